package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCompatSyscallsMarkIncomplete: a 32-bit program's syscalls use the
// i386 table (open is 5 there, close 6). They must be counted and make the
// report incomplete, not be misread as x86-64 syscalls or silently missed.
func TestRunCompatSyscallsMarkIncomplete(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "compat")
	if out, err := exec.Command("gcc", "-O1", "-no-pie", "-o", bin, filepath.Join(repoRoot(), "testdata/compat/compat.c")).CombinedOutput(); err != nil {
		t.Fatalf("building compat: %v\n%s", err, out)
	}
	// Kernels built or booted without 32-bit emulation (ia32_emulation=off)
	// fault int $0x80: no process can make a compat syscall there at all.
	if out, err := exec.Command(bin).CombinedOutput(); err != nil {
		t.Skipf("this kernel does not run 32-bit syscalls (32-bit emulation disabled): %v %s", err, out)
	}
	r, _, code := runTraced(t, nil, bin)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if r.Complete {
		t.Fatalf("report of a 32-bit program is complete; notes %v", r.Notes)
	}
	found := false
	for _, n := range r.Notes {
		if strings.Contains(n, "32-bit (compat) syscalls") {
			found = true
		}
	}
	if !found {
		t.Errorf("no note names the 32-bit syscalls: %v", r.Notes)
	}
	if r.Events.Lost == 0 {
		t.Error("compat syscalls not counted as lost")
	}
}
