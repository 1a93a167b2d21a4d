package symbolize

import (
	"encoding/binary"
	"slices"
	"testing"
)

func TestEvalExpr(t *testing.T) {
	stack := make([]byte, 64)
	binary.LittleEndian.PutUint64(stack[8:], 0xabcdef)
	mem := stackMem{base: 0x1000, b: stack}
	plt := []byte{0x77, 8, 0x80, 0, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22}
	tests := []struct {
		name string
		expr []byte
		rf   regFile
		want uint64
		res  exprResult
	}{
		{"PLT before the push", plt, regFile{ip: 0x4006, sp: 0x1000}, 0x1008, exprOK},
		{"PLT after the push", plt, regFile{ip: 0x400b, sp: 0x1000}, 0x1010, exprOK},
		{"deref through rbp", []byte{0x76, 0x78, 0x06}, regFile{bp: 0x1010}, 0xabcdef, exprOK},
		{"deref outside the copy", []byte{0x76, 0x00, 0x06}, regFile{bp: 0x2000}, 0, exprNeedMemory},
		{"untracked register", []byte{0x73, 0x00}, regFile{}, 0, exprUnsupported},
		{"stack underflow", []byte{0x22}, regFile{}, 0, exprUnsupported},
		{"truncated operand", []byte{0x0c, 1}, regFile{}, 0, exprUnsupported},
		{"endless loop", []byte{0x2f, 0xfd, 0xff}, regFile{}, 0, exprUnsupported},
		{"constants and stack ops", []byte{0x08, 5, 0x08, 2, 0x16, 0x1c, 0x12, 0x1e, 0x11, 0x7f, 0x14, 0x13, 0x13, 0x23, 3}, regFile{}, 12, exprOK},
	}
	for _, tc := range tests {
		got, res := evalExpr(tc.expr, &tc.rf, &mem, 0, false)
		if got != tc.want || res != tc.res {
			t.Errorf("%s: got %#x, %d; want %#x, %d", tc.name, got, res, tc.want, tc.res)
		}
	}
}

// fakeSpace maps code at [0x10000, 0x20000) to a file that does not exist: no CFI,
// so the unwinder walks frame pointers.
func fakeSpace() *AddressSpace {
	var s AddressSpace
	s.Map(Mapping{Start: 0x10000, End: 0x20000, Path: "/nonexistent/leaktrace-test"})
	return &s
}

// fpStack builds a stack at base whose frame-pointer chain returns through ras.
func fpStack(base uint64, ras []uint64) ([]byte, uint64) {
	b := make([]byte, 16*len(ras)+16)
	for i, ra := range ras {
		off := 16 * i
		next := base + uint64(off) + 16
		if i == len(ras)-1 {
			next = 0
		}
		binary.LittleEndian.PutUint64(b[off:], next)
		binary.LittleEndian.PutUint64(b[off+8:], ra)
	}
	return b, base
}

func TestUnwindFramePointers(t *testing.T) {
	s := fakeSpace()
	u := NewUnwinder(NewCache(4))
	ras := []uint64{0x10100, 0x10200, 0x10300}
	stack, bp := fpStack(0x7000, ras)
	regs := Regs{IP: 0x10010, SP: 0x7000, BP: bp}

	got := u.Unwind(s, regs, stack, nil, 64, nil)
	if want := []uint64{0x10010, 0x10100, 0x10200, 0x10300}; !slices.Equal(got, want) {
		t.Fatalf("got %#x, want %#x", got, want)
	}
	if got := u.Unwind(s, regs, stack, nil, 2, []uint64{7}); !slices.Equal(got, []uint64{7, 0x10010, 0x10100}) {
		t.Fatalf("max 2 appended to a prefix: got %#x", got)
	}
	if got := u.Unwind(s, regs, stack, nil, 0, nil); len(got) != 0 {
		t.Fatalf("max 0: got %#x", got)
	}
	// A return address outside every mapping ends the stack.
	bad, _ := fpStack(0x7000, []uint64{0x10100, 0x99999, 0x10300})
	if got := u.Unwind(s, regs, bad, nil, 64, nil); !slices.Equal(got, []uint64{0x10010, 0x10100}) {
		t.Fatalf("unmapped return address: got %#x", got)
	}
	// A frame pointer that does not move up the stack ends it too.
	loop := slices.Clone(stack)
	binary.LittleEndian.PutUint64(loop[16:], 0x7000)
	if got := u.Unwind(s, regs, loop, nil, 64, nil); !slices.Equal(got, []uint64{0x10010, 0x10100, 0x10200}) {
		t.Fatalf("looping frame pointers: got %#x", got)
	}
	// An ip outside every mapping: just the ip.
	if got := u.Unwind(s, Regs{IP: 5, SP: 0x7000, BP: bp}, stack, nil, 64, nil); !slices.Equal(got, []uint64{5}) {
		t.Fatalf("unmapped ip: got %#x", got)
	}
}

func TestUnwindJoinsKernelWalk(t *testing.T) {
	s := fakeSpace()
	u := NewUnwinder(NewCache(4))
	// Recursion: the same return address three times, and more in the kernel's walk.
	stack, bp := fpStack(0x7000, []uint64{0x10500, 0x10500, 0x10500, 0x10600})
	regs := Regs{IP: 0x10010, SP: 0x7000, BP: bp}
	kernel := []uint64{0x10010, 0x10500, 0x10500, 0x10500, 0x10600, 0x10700, 0x10800, 0, 0x10900}
	// Only the first two frames fit in the copy.
	got := u.Unwind(s, regs, stack[:32], kernel, 64, nil)
	want := []uint64{0x10010, 0x10500, 0x10500, 0x10500, 0x10600, 0x10700, 0x10800}
	if !slices.Equal(got, want) {
		t.Fatalf("got %#x, want %#x", got, want)
	}
	if got := u.Unwind(s, regs, stack[:32], kernel, 4, nil); !slices.Equal(got, want[:4]) {
		t.Fatalf("max 4: got %#x", got)
	}
	// The kernel's walk never saw our last pc: stop.
	if got := u.Unwind(s, regs, stack[:32], []uint64{0x10010, 0x10999}, 64, nil); !slices.Equal(got, want[:3]) {
		t.Fatalf("no agreement: got %#x", got)
	}
	// A kernel pc that is not code ends the joined part.
	if got := u.Unwind(s, regs, stack[:32], []uint64{0x10500, 0x10500, 0x10700, 0x4141414141, 0x10800}, 64, nil); !slices.Equal(got, []uint64{0x10010, 0x10500, 0x10500, 0x10700}) {
		t.Fatalf("garbage in the kernel walk: got %#x", got)
	}
}
