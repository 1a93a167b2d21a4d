//go:build linux && amd64

package symbolize

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

// symbolizeStack unwinds a capture with stack cut to n bytes and symbolizes it.
func symbolizeStack(c *Cache, cp capture, n int) ([]uint64, []report.Frame) {
	var s AddressSpace
	for _, m := range cp.maps {
		s.Map(m)
	}
	pcs := NewUnwinder(c).Unwind(&s, cp.regs, cp.stack[:min(n, len(cp.stack))], cp.kernelFP, 64, nil)
	var frames []report.Frame
	for i, loc := range Locate(&s, c, pcs, nil) {
		frames = append(frames, c.Symbolize(loc, i > 0)...)
	}
	return pcs, frames
}

func formatFrames(frames []report.Frame) string {
	var b strings.Builder
	for _, f := range frames {
		fmt.Fprintf(&b, "  %#x %s %s:%d (%s)\n", f.Address, f.Function, filepath.Base(f.File), f.Line, filepath.Base(f.Module))
	}
	return b.String()
}

type wantFrame struct {
	function string
	line     int
}

// checkChain asserts that the first frame of module bin is want[0] and that want
// follows without gaps, with the right source lines.
func checkChain(t *testing.T, frames []report.Frame, bin, srcBase string, want []wantFrame) {
	t.Helper()
	first := -1
	for i, f := range frames {
		if f.Module == bin {
			first = i
			break
		}
	}
	if first < 1 {
		t.Fatalf("want a library frame, then the program's; got\n%s", formatFrames(frames))
	}
	for k, w := range want {
		i := first + k
		if i >= len(frames) {
			t.Fatalf("stack too short for %s; got\n%s", w.function, formatFrames(frames))
		}
		f := frames[i]
		if f.Function != w.function || f.Line != w.line || filepath.Base(f.File) != srcBase {
			t.Fatalf("frame %d = %s %s:%d, want %s %s:%d; stack\n%s", i, f.Function, filepath.Base(f.File), f.Line,
				w.function, srcBase, w.line, formatFrames(frames))
		}
	}
}

func TestUnwindCThroughGlibc(t *testing.T) {
	lines := markerLines(t, "testdata/leak.c")
	marker := markerFile(t)
	for _, fp := range []string{"-fno-omit-frame-pointer", "-fomit-frame-pointer"} {
		bin := buildC(t, fp)
		cases := []struct {
			mode  string
			match func(int, *syscall.PtraceRegs) bool
			first []wantFrame // the frames of leak_c
		}{
			{"open", openatOf(marker), []wantFrame{{"open_inline", lines["open"]}, {"leak_c", lines["inline"]}}},
			{"openat", openatOf(marker), []wantFrame{{"leak_c", lines["openat"]}}},
			{"socket", syscallNr(syscall.SYS_SOCKET), []wantFrame{{"leak_c", lines["socket"]}}},
			{"dup", syscallNr(syscall.SYS_DUP), []wantFrame{{"leak_c", lines["dup"]}}},
		}
		for _, tc := range cases {
			t.Run(fp[1:]+"/"+tc.mode, func(t *testing.T) {
				cp := traceSyscall(t, []string{bin, tc.mode, marker}, tc.match)
				c := NewCache(16)
				_, frames := symbolizeStack(c, cp, len(cp.stack))
				want := append(tc.first, wantFrame{"leak_b", lines["b"]}, wantFrame{"leak_a", lines["a"]}, wantFrame{"main", lines["main"]})
				checkChain(t, frames, bin, "leak.c", want)
				t.Logf("stack:\n%s", formatFrames(frames))
				checkTruncated(t, c, cp, bin, fp == "-fno-omit-frame-pointer" && tc.mode != "open")
			})
		}
	}
}

// checkTruncated unwinds with ever shorter stack copies. Each result must follow the
// full unwind and then, if it goes on, the kernel's walk after a pc where they agree.
// When the copy ends just past leak_c's return address, a program with frame
// pointers whose wrapper keeps %rbp must still unwind to main through the kernel's
// walk.
func checkTruncated(t *testing.T, c *Cache, cp capture, bin string, joinable bool) {
	t.Helper()
	full, _ := symbolizeStack(c, cp, len(cp.stack))
	var s AddressSpace
	for _, m := range cp.maps {
		s.Map(m)
	}
	mainPC := -1
	for i, pc := range full {
		if loc := Locate(&s, c, []uint64{pc}, nil)[0]; i > 0 && c.Symbolize(loc, true)[0].Function == "main" {
			mainPC = i
		}
	}
	if mainPC < 3 {
		t.Fatalf("main not found in the full unwind")
	}
	u := NewUnwinder(c)
	var pcs []uint64
	for n := 0; n <= len(cp.stack); n += 8 {
		pcs = u.Unwind(&s, cp.regs, cp.stack[:n], cp.kernelFP, 64, pcs[:0])
		k := 0
		for k < len(pcs) && k < len(full) && pcs[k] == full[k] {
			k++
		}
		if k == 0 {
			t.Fatalf("stack copy of %d bytes: first pc %#x, want %#x", n, pcs[0], full[0])
		}
		if k < len(pcs) && !followsKernel(pcs[k-1:], cp.kernelFP) {
			t.Fatalf("stack copy of %d bytes: pcs %#x depart from the full unwind %#x at %d and do not follow the kernel's walk %#x",
				n, pcs, full, k, cp.kernelFP)
		}
	}
	// Where leak_c's return address (into leak_b) is saved.
	slot := -1
	for o := 0; o+8 <= len(cp.stack); o += 8 {
		if le64(cp.stack[o:]) == full[2] {
			slot = o
			break
		}
	}
	if slot < 0 {
		t.Fatalf("return address %#x not in the stack copy", full[2])
	}
	pcs = u.Unwind(&s, cp.regs, cp.stack[:slot+8], cp.kernelFP, 64, nil)
	reached := len(pcs) > mainPC && slices.Equal(pcs[:mainPC+1], full[:mainPC+1])
	if joinable && !reached {
		t.Fatalf("stack copy of %d bytes: want the kernel's walk to reach main: got %#x, full %#x, kernel %#x", slot+8, pcs, full, cp.kernelFP)
	}
	if !joinable && (len(pcs) < 3 || len(pcs) > len(full) || !slices.Equal(pcs, full[:len(pcs)])) && !reached {
		t.Fatalf("stack copy of %d bytes: got %#x, want a prefix of %#x", slot+8, pcs, full)
	}
}

// followsKernel tells whether pcs[1:] is what kernelFP has after an occurrence of
// pcs[0].
func followsKernel(pcs, kernelFP []uint64) bool {
	for j, pc := range kernelFP {
		if pc == pcs[0] && j+len(pcs) <= len(kernelFP) && slices.Equal(kernelFP[j:j+len(pcs)], pcs) {
			return true
		}
	}
	return false
}

func TestUnwindGo(t *testing.T) {
	marker := markerFile(t)
	// Without DWARF (-w) there is no .debug_frame: frame pointers carry the unwind.
	for _, flags := range [][]string{nil, {"-ldflags=-w"}} {
		t.Run(strings.Join(append([]string{"go build"}, flags...), " "), func(t *testing.T) {
			bin, src := buildGo(t, flags...)
			lines := markerLines(t, src)
			cp := traceSyscall(t, []string{bin, marker}, openatOf(marker))
			_, frames := symbolizeStack(NewCache(16), cp, len(cp.stack))
			var got []report.Frame
			for _, f := range frames {
				if strings.HasPrefix(f.Function, "main.") {
					got = append(got, f)
				}
			}
			// Without DWARF, .gopclntab gives the inlined os.Open's line in leakOpen.
			if len(got) < 2 || got[0].Function != "main.leakOpen" || (flags == nil && got[0].Line != lines["goopen"]) ||
				got[1].Function != "main.main" || got[1].Line != lines["gomain"] || filepath.Base(got[1].File) != "main.go" {
				t.Fatalf("want main.leakOpen at line %d then main.main at line %d; got\n%s", lines["goopen"], lines["gomain"], formatFrames(frames))
			}
			t.Logf("stack:\n%s", formatFrames(frames))
		})
	}
}

// TestUnwindSteadyStateAllocs: once a call site's rows are cached, unwinding it
// allocates nothing.
func TestUnwindSteadyStateAllocs(t *testing.T) {
	cp, s := captureOpenat(t)
	u := NewUnwinder(NewCache(16))
	pcs := make([]uint64, 0, 64)
	pcs = u.Unwind(s, cp.regs, cp.stack, cp.kernelFP, 64, pcs[:0])
	if len(pcs) < 5 {
		t.Fatalf("short unwind %#x", pcs)
	}
	allocs := testing.AllocsPerRun(100, func() {
		pcs = u.Unwind(s, cp.regs, cp.stack, cp.kernelFP, 64, pcs[:0])
	})
	if allocs != 0 {
		t.Fatalf("Unwind allocates %v times per call in the steady state", allocs)
	}
}

func BenchmarkUnwind(b *testing.B) {
	cp, s := captureOpenat(b)
	u := NewUnwinder(NewCache(16))
	pcs := make([]uint64, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		pcs = u.Unwind(s, cp.regs, cp.stack, cp.kernelFP, 64, pcs[:0])
	}
	b.ReportMetric(float64(len(pcs)), "frames")
}

// captureOpenat captures the C test program, built without frame pointers, at its
// openat.
func captureOpenat(tb testing.TB) (capture, *AddressSpace) {
	bin := buildC(tb, "-fomit-frame-pointer")
	marker := markerFile(tb)
	cp := traceSyscall(tb, []string{bin, "openat", marker}, openatOf(marker))
	s := &AddressSpace{}
	for _, m := range cp.maps {
		s.Map(m)
	}
	return cp, s
}
