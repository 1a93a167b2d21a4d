//go:build linux && amd64

package symbolize

import (
	"os"
	"slices"
	"syscall"
	"testing"
)

// kernelWalk is the kernel's walk with rules (bpf/stack.h, rule_step), over
// the memory of a capture: the model the rules Unwind gives must satisfy.
// whole is false when a frame had no rule or unreadable memory; regs are then
// that frame's, and pcs end with it.
func kernelWalk(rules map[uint64]Rule, regs Regs, mem *stackMem, max int) (pcs []uint64, at Regs, whole bool) {
	pcs = []uint64{regs.IP}
	ip, sp, bp := regs.IP, regs.SP, regs.BP
	for range max + 1 {
		r, ok := rules[ip]
		if ok && r.Kind == RuleEnd {
			if len(pcs) > 1 {
				return pcs[:len(pcs)-1], Regs{}, true
			}
			return pcs, Regs{ip, sp, bp}, false
		}
		if len(pcs) >= max {
			return pcs, Regs{}, true
		}
		if !ok {
			return pcs, Regs{ip, sp, bp}, false
		}
		if r.Kind != RuleStep {
			return pcs, Regs{}, true
		}
		cfa := sp + uint64(int64(r.CFAOff))
		if r.CFAFromBP {
			cfa = bp + uint64(int64(r.CFAOff))
		}
		ra, ok := mem.read(cfa + uint64(int64(r.RAOff)))
		if !ok {
			return pcs, Regs{ip, sp, bp}, false
		}
		nbp := bp
		if r.BPSaved {
			if nbp, ok = mem.read(cfa + uint64(int64(r.BPOff))); !ok {
				return pcs, Regs{ip, sp, bp}, false
			}
		}
		if ra == 0 || cfa <= sp {
			return pcs, Regs{}, true
		}
		pcs = append(pcs, ra)
		ip, sp, bp = ra, cfa, nbp
	}
	return pcs, Regs{}, true
}

// TestRulesReproduceUnwind: the kernel learns a stack the way it does in
// use, from stack copies of a few hundred bytes taken where it stopped,
// until it unwinds the stack alone; its stack is then Unwind's on the whole
// copy. Over real processes, with and without frame pointers, C and Go.
func TestRulesReproduceUnwind(t *testing.T) {
	marker := markerFile(t)
	type tc struct {
		name string
		cp   capture
	}
	var cases []tc
	for _, fp := range []string{"-fno-omit-frame-pointer", "-fomit-frame-pointer"} {
		bin := buildC(t, fp)
		for _, mode := range []string{"open", "openat"} {
			cases = append(cases, tc{"c" + fp + "/" + mode, traceSyscall(t, []string{bin, mode, marker}, openatOf(marker))})
		}
		cases = append(cases, tc{"c" + fp + "/socket", traceSyscall(t, []string{bin, "socket", marker}, syscallNr(syscall.SYS_SOCKET))})
	}
	goBin, _ := buildGo(t)
	cases = append(cases, tc{"go", traceSyscall(t, []string{goBin, marker}, openatOf(marker))})
	// Debian's interpreter: no frame pointers, deep C stacks.
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		cases = append(cases, tc{"python3", traceSyscall(t, []string{"/usr/bin/python3", "-c", "def f(n):\n if n: return f(n-1)\n open('" + marker + "')\nf(5)"}, openatOf(marker))})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s AddressSpace
			for _, m := range c.cp.maps {
				s.Map(m)
			}
			cache := NewCache(16)
			u := NewUnwinder(cache)
			want := u.Unwind(&s, c.cp.regs, c.cp.stack, c.cp.kernelFP, 64, nil)
			mem := &stackMem{base: c.cp.regs.SP, b: c.cp.stack}
			rules := map[uint64]Rule{}
			const copyBytes = 1024 // less than the stack: several rounds to learn it
			for round := 1; ; round++ {
				known, at, whole := kernelWalk(rules, c.cp.regs, mem, 64)
				if whole {
					if !slices.Equal(known, want) {
						t.Fatalf("round %d: the kernel's stack %#x, Unwind's %#x", round, known, want)
					}
					t.Logf("%d frames unwound by the kernel alone after %d rounds, %d rules", len(known), round, len(rules))
					return
				}
				if round > 20 {
					t.Fatalf("not learned after 20 rounds: the kernel stops at %#x (%d frames), Unwind has %#x", at.IP, len(known), want)
				}
				// What Go gets: the frames before the stop, then a copy from there.
				off := at.SP - c.cp.regs.SP
				if at.SP < c.cp.regs.SP || off > uint64(len(c.cp.stack)) {
					t.Fatalf("round %d: stop sp %#x outside the capture", round, at.SP)
				}
				cp := c.cp.stack[off:min(off+copyBytes, uint64(len(c.cp.stack)))]
				var learned []Rule
				pcs := append([]uint64(nil), known[:len(known)-1]...)
				pcs = u.UnwindFrom(&s, at, len(known) == 1, cp, nil, 64-len(pcs), pcs, &learned)
				if !slices.Equal(pcs[:min(len(pcs), len(want))], want[:min(len(pcs), len(want))]) {
					t.Fatalf("round %d: Go's stack %#x departs from Unwind's %#x", round, pcs, want)
				}
				n := len(rules)
				for _, r := range learned {
					rules[r.PC] = r
					checkFileRule(t, &s, r)
				}
				if len(rules) == n {
					t.Fatalf("round %d: nothing learned at %#x; stack so far %#x, Unwind's %#x", round, at.IP, known, want)
				}
			}
		})
	}
}

// checkFileRule: a rule for code in a file names that file as stat does
// and the pc's offset in it as /proc/PID/maps gives it; one where nothing
// is mapped (the end of the stack) names none.
func checkFileRule(t *testing.T, s *AddressSpace, r Rule) {
	t.Helper()
	m, ok := s.Lookup(r.PC)
	if !ok {
		if r.InFile {
			t.Errorf("rule at %#x: names a file (%+v) where nothing is mapped", r.PC, r.File)
		}
		return
	}
	if r.Kind == RuleEnd {
		return
	}
	if !r.InFile {
		t.Errorf("rule at %#x in %s: names no file", r.PC, m.Path)
		return
	}
	var st syscall.Stat_t
	if err := syscall.Stat(m.Path, &st); err != nil {
		t.Fatal(err)
	}
	if want := m.Offset + r.PC - m.Start; r.File.Off != want || r.File.Ino != st.Ino || r.File.Dev != st.Dev || r.File.Size != st.Size {
		t.Errorf("rule at %#x: file %+v, want %s (dev %d ino %d size %d) at offset %#x", r.PC, r.File, m.Path, st.Dev, st.Ino, st.Size, want)
	}
}

// TestRuleOf: what the kernel cannot do is never handed to it.
func TestRuleOf(t *testing.T) {
	for _, c := range []struct {
		name string
		r    row
		ok   bool
	}{
		{"cfa sp", row{cfa: rule{kind: ruleCFA, reg: regRSP, off: 16}}, true},
		{"cfa bp, bp saved", row{cfa: rule{kind: ruleCFA, reg: regRBP, off: 16}, rbp: rule{kind: ruleOffset, off: -16}}, true},
		{"cfa expression", row{cfa: rule{kind: ruleCFAExpr, expr: []byte{0x77, 8}}}, false},
		{"signal frame", row{cfa: rule{kind: ruleCFA, reg: regRSP, off: 8}, signal: true}, false},
		{"bp in a register", row{cfa: rule{kind: ruleCFA, reg: regRSP, off: 8}, rbp: rule{kind: ruleRegister, reg: 3}}, false},
		{"ra by expression", row{cfa: rule{kind: ruleCFA, reg: regRSP, off: 8}, ra: rule{kind: ruleExpr, expr: []byte{0x70, 0}}}, false},
		{"cfa off too big", row{cfa: rule{kind: ruleCFA, reg: regRSP, off: 1 << 40}}, false},
	} {
		if got := ruleOf(&c.r); (got.Kind == RuleStep) != c.ok {
			t.Errorf("%s: rule %+v, want usable %v", c.name, got, c.ok)
		}
	}
}

// TestKernelNameKeysFileRules: once the kernel has said how it names a
// file (overlayfs: the layer's file, where Go stats the overlay's), rules
// for that file's code carry the kernel's name, at the same offsets; told
// the name stat gives, the unwinder goes back to it.
func TestKernelNameKeysFileRules(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	u := NewUnwinder(NewCache(4))
	m := Mapping{Start: 0x400000, End: 0x500000, Offset: 0x1000, Path: exe}
	ruleAt := func() Rule {
		r := Rule{PC: 0x401234, Kind: RuleStep}
		u.fileRule(&r, m)
		if !r.InFile || r.File.Off != 0x1234+0x1000 {
			t.Fatalf("rule %+v: want one in %s at offset %#x", r, exe, 0x2234)
		}
		return r
	}
	if r := ruleAt(); r.File.Dev != st.Dev || r.File.Ino != st.Ino {
		t.Fatalf("rule names %+v, want stat's dev %d ino %d", r.File, st.Dev, st.Ino)
	}
	kernel := FileOffset{Dev: 0x27, Ino: 8, Size: 4096, MtimeNano: 1_700_000_000_000_000_005, Off: 0x2234}
	u.KernelName(exe, kernel)
	if r := ruleAt(); r.File != kernel {
		t.Errorf("after the kernel's name: rule names %+v, want %+v", r.File, kernel)
	}
	own := FileOffset{Dev: st.Dev, Ino: st.Ino, Size: st.Size, MtimeNano: st.Mtim.Sec*1e9 + st.Mtim.Nsec, Off: 0x2234}
	u.KernelName(exe, own)
	if r := ruleAt(); r.File != own || len(u.named) != 0 {
		t.Errorf("told stat's own name: rule names %+v, want %+v (%d names kept)", r.File, own, len(u.named))
	}
}
