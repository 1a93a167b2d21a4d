package tracer

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

func TestParseStackDepths(t *testing.T) {
	log := "func#0 @0\n...\nverification time 2076 usec\nstack depth 56+0+40+8\nprocessed 337 insns (limit 1000000)\n"
	got, err := parseStackDepths(log)
	if err != nil || len(got) != 4 || got[0] != 56 || got[1] != 0 || got[3] != 8 {
		t.Fatalf("parseStackDepths = %v, %v", got, err)
	}
	for _, bad := range []string{"", "stack depth \n", "stack depth 8+x\n", "stack depth -8\n", "stack depth 8++8\n"} {
		if d, err := parseStackDepths(bad); err == nil {
			t.Errorf("parseStackDepths(%q) = %v, want an error", bad, d)
		}
	}
}

func FuzzParseStackDepths(f *testing.F) {
	f.Add("stack depth 152+52+8+104\n")
	f.Add("processed 1 insns\nstack depth 0\n")
	f.Fuzz(func(t *testing.T, log string) {
		d, err := parseStackDepths(log)
		if err != nil {
			return
		}
		for _, n := range d {
			if n < 0 {
				t.Fatalf("negative depth in %v", d)
			}
		}
	})
}

// fn is a function of a synthetic program: its first instruction carries its
// name, then a call to each of calls.
func fn(name string, calls ...string) asm.Instructions {
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0).WithSymbol(name)}
	for _, c := range calls {
		insns = append(insns, asm.Call.Label(c))
	}
	return append(insns, asm.Return())
}

func program(fns ...asm.Instructions) asm.Instructions {
	var out asm.Instructions
	for _, f := range fns {
		out = append(out, f...)
	}
	return out
}

// The chain is Linux 6.1's: each frame rounded up to 32 bytes (an empty one
// still 32), the deepest path of direct calls; a callback's function
// pointer is no call.
func TestStackChain(t *testing.T) {
	prog := program(
		fn("entry", "shallow", "deep"),
		fn("shallow"),
		fn("deep", "leaf"),
		fn("leaf"),
		append(fn("loops"), asm.Instruction{OpCode: asm.LoadImmOp(asm.DWord), Dst: asm.R2, Src: asm.PseudoFunc}.WithReference("callback")),
		fn("callback"),
	)
	// entry 150 → 160, deep 33 → 64, leaf 0 → 32; entry and shallow (50 → 64)
	// are less, and the callback (500) is no call.
	c, err := stackChain(prog, []int{150, 50, 33, 0, 8, 500})
	if err != nil {
		t.Fatal(err)
	}
	if c.Bytes != 256 || strings.Join(c.Path, ">") != "entry>deep>leaf" {
		t.Errorf("stackChain = %d bytes via %v, want 256 via entry>deep>leaf", c.Bytes, c.Path)
	}
	if _, err := stackChain(prog, []int{1, 2, 3}); err == nil {
		t.Error("figures for fewer functions than the program has were matched")
	}
	if _, err := stackChain(program(fn("a", "b"), fn("b", "a")), []int{8, 8}); err == nil {
		t.Error("a recursive program was measured")
	}
	if _, err := stackChain(program(fn("a", "nowhere")), []int{8}); err == nil {
		t.Error("a call to a function not in the program was measured")
	}
}
