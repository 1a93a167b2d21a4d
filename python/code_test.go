package python

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
	"unicode/utf16"
)

// fakeMem is a sparse address space: regions of bytes at addresses.
type fakeMem struct{ regions map[uint64][]byte }

var errUnmapped = errors.New("unmapped")

func (m *fakeMem) ReadAt(p []byte, addr int64) (int, error) {
	for start, b := range m.regions {
		a := uint64(addr)
		if a >= start && a+uint64(len(p)) <= start+uint64(len(b)) {
			return copy(p, b[a-start:]), nil
		}
	}
	return 0, errUnmapped
}

var testTypes = types{code: 0x1000, str: 0x2000, bytes: 0x3000}

// image lays out CPython 3.11 objects in a fakeMem.
type image struct {
	mem  *fakeMem
	next uint64
}

func newImage() *image { return &image{mem: &fakeMem{regions: map[uint64][]byte{}}, next: 0x100000} }

func (im *image) put(b []byte) uint64 {
	a := im.next
	im.mem.regions[a] = b
	im.next += uint64(len(b)+64) &^ 15
	return a
}

func (im *image) str(s string) uint64 {
	l := &layout311
	ascii := true
	for _, r := range s {
		if r >= 128 {
			ascii = false
		}
	}
	if ascii {
		b := make([]byte, l.StrASCIIData+len(s)+1)
		binary.LittleEndian.PutUint64(b[l.ObType:], testTypes.str)
		binary.LittleEndian.PutUint64(b[l.StrLength:], uint64(len(s)))
		binary.LittleEndian.PutUint32(b[l.StrState:], 1<<2|1<<5|1<<6)
		copy(b[l.StrASCIIData:], s)
		return im.put(b)
	}
	units := utf16.Encode([]rune(s)) // kind 2: every test string is in the BMP
	b := make([]byte, l.StrCompactDat+2*len(units)+2)
	binary.LittleEndian.PutUint64(b[l.ObType:], testTypes.str)
	binary.LittleEndian.PutUint64(b[l.StrLength:], uint64(len(units)))
	binary.LittleEndian.PutUint32(b[l.StrState:], 2<<2|1<<5)
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[l.StrCompactDat+2*i:], u)
	}
	return im.put(b)
}

func (im *image) bytes(d []byte) uint64 {
	l := &layout311
	b := make([]byte, l.BytesData+len(d)+1)
	binary.LittleEndian.PutUint64(b[l.ObType:], testTypes.bytes)
	binary.LittleEndian.PutUint64(b[l.VarSize:], uint64(len(d)))
	copy(b[l.BytesData:], d)
	return im.put(b)
}

func (im *image) code(name, file string, first int, table []byte) uint64 {
	l := &layout311
	b := make([]byte, l.CodeHeader+200)
	binary.LittleEndian.PutUint64(b[l.ObType:], testTypes.code)
	binary.LittleEndian.PutUint32(b[l.CodeFirstLine:], uint32(first))
	binary.LittleEndian.PutUint64(b[l.CodeFilename:], im.str(file))
	binary.LittleEndian.PutUint64(b[l.CodeQualname:], im.str(name))
	binary.LittleEndian.PutUint64(b[l.CodeLinetable:], im.bytes(table))
	return im.put(b)
}

func sampleLinetable(t testing.TB) []byte {
	table, err := hex.DecodeString(sampleTable)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func TestReadCode(t *testing.T) {
	im := newImage()
	table := sampleLinetable(t)
	addr := im.code("Store.get_options", "/srv/app/störage.py", 2, table)
	r := reader{mem: im.mem, l: &layout311, types: testTypes}
	c, err := r.code(addr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Store.get_options" || c.File != "/srv/app/störage.py" || c.FirstLine != 2 {
		t.Fatalf("read %+v", c)
	}
	// Code unit 41 is on line 12 (sampleLines).
	instr := addr + uint64(layout311.CodeHeader) + 41*2
	if line, ok := c.line(addr, instr, &layout311); !ok || line != 12 {
		t.Errorf("line %d ok=%v, want 12", line, ok)
	}
	if line, ok := c.line(addr, addr+uint64(layout311.CodeHeader)-2, &layout311); !ok || line != 2 {
		t.Errorf("a frame not started: line %d ok=%v, want 2", line, ok)
	}
}

func TestReadCodeRejects(t *testing.T) {
	im := newImage()
	good := im.code("f", "/a.py", 1, []byte{0x80})
	notCode := im.str("not a code object")
	badName := im.code("f", "/a.py", 1, []byte{0x80})
	// Point co_qualname at a bytes object.
	binary.LittleEndian.PutUint64(im.mem.regions[badName][layout311.CodeQualname:], im.bytes([]byte("x")))
	r := reader{mem: im.mem, l: &layout311, types: testTypes}
	if _, err := r.code(good); err != nil {
		t.Fatalf("good code object: %v", err)
	}
	for name, addr := range map[string]uint64{"unmapped": 0xdead0000, "null": 0, "a str": notCode, "bad name": badName, "huge": 1 << 63} {
		if c, err := r.code(addr); err == nil {
			t.Errorf("%s: read %+v", name, c)
		}
	}
}

// FuzzReadCode feeds arbitrary "process memory" to the code-object reader.
func FuzzReadCode(f *testing.F) {
	im := newImage()
	addr := im.code("f", "/a.py", 3, []byte{0xf8, 0x01})
	seed := make([]byte, 0, 4096)
	for a := uint64(0x100000); a < im.next; a++ {
		b := byte(0)
		for start, r := range im.mem.regions {
			if a >= start && a < start+uint64(len(r)) {
				b = r[a-start]
			}
		}
		seed = append(seed, b)
	}
	f.Add(seed, addr-0x100000, uint64(0))
	f.Fuzz(func(t *testing.T, mem []byte, off, instr uint64) {
		m := &fakeMem{regions: map[uint64][]byte{0x100000: mem}}
		r := reader{mem: m, l: &layout311, types: testTypes}
		c, err := r.code(0x100000 + off)
		if err == nil {
			c.line(0x100000+off, instr, &layout311)
		}
	})
}
