package symbolize

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// pageSize is the x86-64 page size the kernel maps ELF segments with.
const pageSize = 4096

// maxSectionSize bounds what is read of one section, so that a corrupt or hostile
// header cannot make the tracer allocate without limit.
const maxSectionSize = 1 << 30

// segment is one PT_LOAD program header.
type segment struct {
	vaddr, offset, filesz, memsz uint64
	exec                         bool
}

// fileIdent tells whether the file at a path is still the one that was parsed.
type fileIdent struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func identOf(fi os.FileInfo) fileIdent {
	id := fileIdent{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino) // int32/uint64 on some OSes: this package builds anywhere
	}
	return id
}

// Module is one parsed ELF file: its load segments and call frame information, parsed
// when the module is first used, and its symbol tables, parsed on first symbolization.
type Module struct {
	path   string
	ident  fileIdent
	typ    elf.Type
	entry  uint64
	interp string
	loads  []segment
	isGo   bool

	ehFrame    *cfiTable // nil when absent or unparsable
	debugFrame *cfiTable

	sym symState
	// file stays open so that a binary deleted after exec (go test's, in a
	// temporary directory) still symbolizes; the GC closes it with the module.
	file *os.File
}

// Path returns the file the module was parsed from.
func (m *Module) Path() string { return m.path }

// Vaddr maps a file offset to the ELF virtual address it is loaded at, through the
// PT_LOAD segments. Executable segments win where page rounding makes two overlap.
func (m *Module) Vaddr(fileOffset uint64) (uint64, bool) {
	for pass := 0; pass < 2; pass++ {
		for _, s := range m.loads {
			if (pass == 0) != s.exec {
				continue
			}
			if fileOffset >= s.offset && fileOffset-s.offset < s.memsz {
				return s.vaddr + (fileOffset - s.offset), true
			}
		}
	}
	return 0, false
}

// openModule parses the parts of path that unwinding needs.
func openModule(path string) (*Module, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	kept := false
	defer func() {
		if !kept {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%s: not an x86-64 ELF file", path)
	}
	m := &Module{path: path, ident: identOf(fi), typ: ef.Type, entry: ef.Entry}
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			m.loads = append(m.loads, segment{
				vaddr: p.Vaddr, offset: p.Off, filesz: p.Filesz, memsz: p.Memsz,
				exec: p.Flags&elf.PF_X != 0,
			})
		case elf.PT_INTERP:
			b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
			if err != nil {
				return nil, fmt.Errorf("reading interpreter of %s: %w", path, err)
			}
			m.interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	m.isGo = ef.Section(".gopclntab") != nil || ef.Section(".go.buildinfo") != nil
	bases := cfiBases{}
	if s := ef.Section(".text"); s != nil {
		bases.text = s.Addr
	}
	if s := ef.Section(".got"); s != nil {
		bases.data = s.Addr
	}
	// A module whose CFI cannot be parsed still unwinds with frame pointers and still
	// symbolizes: CFI errors only leave the table out.
	if s := ef.Section(".eh_frame"); s != nil && s.Type != elf.SHT_NOBITS {
		if data, err := sectionData(s); err == nil {
			b := bases
			b.section = s.Addr
			m.ehFrame, _ = parseCFI(data, true, b)
		}
	}
	// Both, when both exist: a cgo binary's .eh_frame covers only its C code, its Go
	// code is in .debug_frame. Lookups try .eh_frame first.
	if data, err := debugSectionData(ef, "frame"); err == nil && data != nil {
		m.debugFrame, _ = parseCFI(data, false, bases)
		if m.debugFrame != nil {
			m.debugFrame.goFrames = m.isGo
		}
	}
	m.file, kept = f, true
	return m, nil
}

// sectionData reads a section, decompressing SHF_COMPRESSED ones.
func sectionData(s *elf.Section) ([]byte, error) {
	if s.Type == elf.SHT_NOBITS {
		return nil, errors.New("section has no data")
	}
	if s.Size > maxSectionSize {
		return nil, fmt.Errorf("section %s too large", s.Name)
	}
	return io.ReadAll(io.LimitReader(s.Open(), maxSectionSize))
}

// debugSectionData reads .debug_NAME, or the older zlib-compressed .zdebug_NAME
// ("ZLIB", 8-byte big-endian size, zlib stream). It returns nil, nil when neither
// exists.
func debugSectionData(ef *elf.File, name string) ([]byte, error) {
	if s := ef.Section(".debug_" + name); s != nil {
		return sectionData(s)
	}
	s := ef.Section(".zdebug_" + name)
	if s == nil {
		return nil, nil
	}
	raw, err := sectionData(s)
	if err != nil {
		return nil, err
	}
	if len(raw) < 12 || string(raw[:4]) != "ZLIB" {
		return nil, fmt.Errorf("%s: bad .zdebug header", s.Name)
	}
	size := binary.BigEndian.Uint64(raw[4:12])
	if size > maxSectionSize {
		return nil, fmt.Errorf("%s: too large", s.Name)
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw[12:]))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	defer zr.Close()
	out := make([]byte, size)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	return out, nil
}

// ImageMappings returns the executable mappings that loading the ELF file path at load
// bias bias creates: one per PT_LOAD segment with PF_X. Used at exec, when the kernel
// has mapped the executable and its interpreter and /proc may already be gone.
func ImageMappings(c *Cache, path string, bias uint64) ([]Mapping, error) {
	m, err := c.Module(path)
	if err != nil {
		return nil, err
	}
	var out []Mapping
	for _, s := range m.loads {
		if !s.exec || s.memsz == 0 {
			continue
		}
		out = append(out, Mapping{
			Start:  pageDown(bias + s.vaddr),
			End:    pageUp(bias + s.vaddr + s.memsz),
			Offset: pageDown(s.offset),
			Path:   path,
		})
	}
	return out, nil
}

// EntryBias returns the load bias of an executable from the AT_ENTRY auxv value:
// atEntry - e_entry for a position-independent (ET_DYN) executable, 0 for ET_EXEC.
func EntryBias(c *Cache, path string, atEntry uint64) (uint64, error) {
	m, err := c.Module(path)
	if err != nil {
		return 0, err
	}
	if m.typ != elf.ET_DYN {
		return 0, nil
	}
	return atEntry - m.entry, nil
}

// Interp returns the PT_INTERP path of an executable, "" for a static one.
func Interp(c *Cache, path string) (string, error) {
	m, err := c.Module(path)
	if err != nil {
		return "", err
	}
	return m.interp, nil
}

func pageDown(x uint64) uint64 { return x &^ (pageSize - 1) }
func pageUp(x uint64) uint64   { return (x + pageSize - 1) &^ (pageSize - 1) }
