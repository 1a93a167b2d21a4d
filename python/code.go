package python

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Memory reads a process's memory; /proc/PID/mem is one.
type Memory interface {
	ReadAt(p []byte, addr int64) (int, error)
}

// types are the absolute addresses of the type objects a read object must
// point at: a check that the address still holds what we think it does.
type types struct {
	code, str, bytes uint64
}

// Code is what leaktrace keeps of a code object.
type Code struct {
	Name      string // co_qualname: "Store.get", "main.<locals>.inner"
	File      string // co_filename
	FirstLine int
	linetable []byte
	fileAddr  uint64 // co_filename's address: the code object's identity with its address
	partial   bool   // names only, from the kernel: no line table
}

const (
	maxStr       = 4096
	maxLinetable = 1 << 20
)

var errNotObject = errors.New("not the expected object")

// reader decodes CPython objects from a process's memory with one layout.
type reader struct {
	mem   Memory
	l     *Layout
	types types
	buf   []byte
}

func (r *reader) read(addr uint64, n int) ([]byte, error) {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if addr == 0 || addr > 1<<62 {
		return nil, fmt.Errorf("bad address %#x", addr)
	}
	got, err := r.mem.ReadAt(b, int64(addr))
	if got < n {
		if err == nil {
			err = errors.New("short read")
		}
		return nil, fmt.Errorf("reading %d bytes at %#x: %w", n, addr, err)
	}
	return b, nil
}

// code reads the code object at addr.
func (r *reader) code(addr uint64) (*Code, error) {
	l := r.l
	b, err := r.read(addr, l.CodeHeader)
	if err != nil {
		return nil, err
	}
	if u64(b, l.ObType) != r.types.code {
		return nil, fmt.Errorf("code object at %#x: %w", addr, errNotObject)
	}
	first := int(int32(binary.LittleEndian.Uint32(b[l.CodeFirstLine:])))
	fileAt, nameAt, tableAt := u64(b, l.CodeFilename), u64(b, l.CodeQualname), u64(b, l.CodeLinetable)
	c := &Code{FirstLine: first, fileAddr: fileAt}
	if c.File, err = r.str(fileAt); err != nil {
		return nil, fmt.Errorf("co_filename: %w", err)
	}
	if c.Name, err = r.str(nameAt); err != nil {
		return nil, fmt.Errorf("co_qualname: %w", err)
	}
	if c.linetable, err = r.bytes(tableAt); err != nil {
		return nil, fmt.Errorf("co_linetable: %w", err)
	}
	return c, nil
}

// str reads a compact str object (every str the compiler makes is one).
func (r *reader) str(addr uint64) (string, error) {
	l := r.l
	b, err := r.read(addr, l.StrASCIIData)
	if err != nil {
		return "", err
	}
	if u64(b, l.ObType) != r.types.str {
		return "", fmt.Errorf("str at %#x: %w", addr, errNotObject)
	}
	n := u64(b, l.StrLength)
	state := binary.LittleEndian.Uint32(b[l.StrState:])
	kind := int(state>>2) & 7
	compact, ascii := state>>5&1 == 1, state>>6&1 == 1
	if !compact || n > maxStr || (kind != 1 && kind != 2 && kind != 4) {
		return "", fmt.Errorf("str at %#x: length %d state %#x unsupported", addr, n, state)
	}
	if ascii {
		d, err := r.read(addr+uint64(l.StrASCIIData), int(n))
		if err != nil {
			return "", err
		}
		return string(d), nil
	}
	d, err := r.read(addr+uint64(l.StrCompactDat), int(n)*kind)
	if err != nil {
		return "", err
	}
	return decodeKind(d, kind), nil
}

// decodeKind turns PEP 393 code units of 1, 2 or 4 bytes into UTF-8.
func decodeKind(d []byte, kind int) string {
	out := make([]byte, 0, len(d))
	for i := 0; i+kind <= len(d); i += kind {
		var r rune
		switch kind {
		case 1:
			r = rune(d[i])
		case 2:
			r = rune(binary.LittleEndian.Uint16(d[i:]))
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
			}
		default:
			r = rune(binary.LittleEndian.Uint32(d[i:]))
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}

// bytes reads a bytes object's contents into a new slice.
func (r *reader) bytes(addr uint64) ([]byte, error) {
	l := r.l
	b, err := r.read(addr, l.BytesData)
	if err != nil {
		return nil, err
	}
	if u64(b, l.ObType) != r.types.bytes {
		return nil, fmt.Errorf("bytes at %#x: %w", addr, errNotObject)
	}
	n := u64(b, l.VarSize)
	if n > maxLinetable {
		return nil, fmt.Errorf("bytes at %#x: length %d too large", addr, n)
	}
	d, err := r.read(addr+uint64(l.BytesData), int(n))
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), d...), nil
}

func u64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
