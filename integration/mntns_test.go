package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

// A program in another mount namespace (a container's view) runs from a
// file leaktrace cannot see at that path: its stacks must still name its
// functions, read through /proc/PID/root, and show the program's own path.
func TestRunOtherMountNamespace(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	mnt := t.TempDir() // empty here; a tmpfs with the program inside the namespace
	script := strings.Join([]string{
		"mount -t tmpfs leaktrace-test " + mnt,
		"cp " + filepath.Join(dir, "leaky-c") + " " + mnt + "/leaky",
		"exec " + mnt + "/leaky",
	}, " && ")
	r, tr, code := runTraced(t, nil, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if _, err := os.Stat(filepath.Join(mnt, "leaky")); err == nil {
		t.Fatal("the namespace's tmpfs is visible outside it: the test proves nothing")
	}
	if len(tr.leaks) != 7 {
		t.Fatalf("program reported %d intentional leaks, want 7", len(tr.leaks))
	}
	named := 0
	for _, l := range r.Leaks {
		fn, ok := tr.leaks[l.FD]
		if !ok || l.Inherited {
			continue
		}
		if !report.HasFunction(l.Stack, fn) {
			t.Errorf("fd %d: stack does not name %s: %+v", l.FD, fn, l.Stack)
			continue
		}
		named++
		for _, f := range l.Stack {
			if strings.HasPrefix(f.Module, "/proc/") {
				t.Errorf("fd %d: frame module %q is leaktrace's path, not the program's", l.FD, f.Module)
			}
		}
	}
	if named != len(tr.leaks) {
		t.Errorf("%d of %d leaks named their function", named, len(tr.leaks))
	}
}
