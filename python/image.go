package python

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Image is an ELF file that holds a CPython interpreter: Debian's python3.11
// executable (statically linked interpreter) or a libpython3.x.so.
type Image struct {
	Path    string
	Version uint32 // PY_VERSION_HEX
	layout  *Layout

	// ELF virtual addresses; add the load bias for a process's addresses.
	runtime, codeType, strType, bytesType uint64
	// loads maps file offsets to virtual addresses.
	loads []elf.ProgHeader
}

// ErrNotPython: the file holds no interpreter leaktrace can read.
var ErrNotPython = errors.New("no supported CPython interpreter")

// MayBePython is a cheap filter on a path before its ELF file is opened:
// python3.11, python3, libpython3.11.so.1.0.
func MayBePython(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "python") || strings.HasPrefix(base, "libpython")
}

// Inspect reads an ELF file's symbols for a CPython interpreter.
func Inspect(path string) (im *Image, err error) {
	// debug/elf can panic on a malformed file: an executable must not bring
	// leaktrace down.
	defer func() {
		if r := recover(); r != nil {
			im, err = nil, fmt.Errorf("reading %s: malformed ELF: %v", path, r)
		}
	}()
	ef, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer ef.Close()
	want := map[string]uint64{"_PyRuntime": 0, "Py_Version": 0, "PyCode_Type": 0, "PyUnicode_Type": 0, "PyBytes_Type": 0}
	syms, _ := ef.DynamicSymbols()
	if more, err := ef.Symbols(); err == nil {
		syms = append(syms, more...)
	}
	for _, s := range syms {
		if v, ok := want[s.Name]; ok && v == 0 && s.Value != 0 {
			want[s.Name] = s.Value
		}
	}
	for name, v := range want {
		if v == 0 && name != "Py_Version" {
			return nil, fmt.Errorf("%s: no %s: %w", path, name, ErrNotPython)
		}
	}
	im = &Image{Path: path, runtime: want["_PyRuntime"], codeType: want["PyCode_Type"],
		strType: want["PyUnicode_Type"], bytesType: want["PyBytes_Type"]}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			im.loads = append(im.loads, p.ProgHeader)
		}
	}
	// Py_Version (3.11+) is a constant in the file: no process needed.
	// Before it, only the file's name says the version.
	if want["Py_Version"] == 0 {
		return nil, &UnsupportedError{Minor: nameVersion(path), Reason: "versions before 3.11 are not supported"}
	}
	v, err := readVaddr(ef, want["Py_Version"], 4)
	if err != nil {
		return nil, fmt.Errorf("%s: reading Py_Version: %w", path, err)
	}
	im.Version = binary.LittleEndian.Uint32(v)
	if im.Version>>16 < 0x030d {
		var ok bool
		if im.layout, ok = tableLayout(im.Version); !ok {
			return nil, &UnsupportedError{Version: im.Version, Reason: "versions before 3.11 are not supported"}
		}
		return im, nil
	}
	// 3.13+: _PyRuntime starts with its own offsets, initialized in the file.
	b, err := readVaddrUpTo(ef, im.runtime, debugOffsetsSize())
	if err != nil {
		return nil, fmt.Errorf("%s: reading _Py_DebugOffsets: %w", path, err)
	}
	layout, version, err := debugOffsetsLayout(b)
	if err != nil {
		var ue *UnsupportedError
		if errors.As(err, &ue) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if version>>16 != im.Version>>16 {
		return nil, fmt.Errorf("%s: _Py_DebugOffsets says %s, Py_Version %s", path, VersionString(version), VersionString(im.Version))
	}
	im.layout = layout
	return im, nil
}

// nameVersion is the "3.10" in python3.10 or libpython3.10.so.1.0.
func nameVersion(path string) string {
	base := strings.TrimPrefix(strings.TrimPrefix(filepath.Base(path), "lib"), "python")
	end := 0
	for end < len(base) && (base[end] == '.' || base[end] >= '0' && base[end] <= '9') {
		end++
	}
	v := strings.TrimRight(base[:end], ".")
	if v == "" {
		return "3"
	}
	if parts := strings.Split(v, "."); len(parts) > 2 {
		v = parts[0] + "." + parts[1]
	}
	return v
}

// readVaddrUpTo reads up to n bytes at vaddr: what the file holds of them.
func readVaddrUpTo(ef *elf.File, vaddr uint64, n int) ([]byte, error) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Filesz {
			b := make([]byte, min(uint64(n), p.Vaddr+p.Filesz-vaddr))
			if _, err := p.ReadAt(b, int64(vaddr-p.Vaddr)); err != nil {
				return nil, err
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("address %#x not in the file", vaddr)
}

func readVaddr(ef *elf.File, vaddr uint64, n int) ([]byte, error) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr+uint64(n) <= p.Vaddr+p.Filesz {
			b := make([]byte, n)
			if _, err := p.ReadAt(b, int64(vaddr-p.Vaddr)); err != nil {
				return nil, err
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("address %#x not in the file", vaddr)
}

// VersionString renders a PY_VERSION_HEX as "3.11.7".
func VersionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff)
}

// Bias returns the load bias of a mapping of the image at addr from file
// offset off.
func (im *Image) Bias(addr, off uint64) (uint64, bool) {
	for _, p := range im.loads {
		if off >= p.Off && off < p.Off+max(p.Filesz, 1) {
			return addr - (p.Vaddr - p.Off + off), true
		}
	}
	return 0, false
}

// Images caches Inspect by path and file identity.
type Images struct {
	mu sync.Mutex
	m  map[string]imageEntry
}

type imageEntry struct {
	ino   uint64
	mtime time.Time
	im    *Image
	err   error
}

// Get returns the interpreter in path, or an error wrapping ErrNotPython.
func (c *Images) Get(path string) (*Image, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", path, err)
	}
	ino := inode(fi)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[path]; ok && e.ino == ino && e.mtime.Equal(fi.ModTime()) {
		return e.im, e.err
	}
	im, err := Inspect(path)
	if c.m == nil {
		c.m = make(map[string]imageEntry)
	}
	c.m[path] = imageEntry{ino: ino, mtime: fi.ModTime(), im: im, err: err}
	return im, err
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
