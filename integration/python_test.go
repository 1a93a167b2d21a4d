package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

// pythons are the interpreters to test with: Debian's /usr/bin/python3 (the
// interpreter linked into the executable, no frame pointers), which CI must
// have, and the python3 on PATH when it is another build (pyenv's, with a
// shared libpython). Each is resolved to its real executable: pyenv's shim
// is a bash script.
func pythons(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, cmd := range map[string]string{"debian": "/usr/bin/python3", "path": "python3"} {
		exe, err := exec.Command(cmd, "-c", "import sys; print(sys.executable)").Output()
		if err != nil {
			if name == "debian" {
				t.Fatalf("Debian's %s is needed (apt-get install python3): %v", cmd, err)
			}
			t.Logf("no %s on PATH: only Debian's python is tested", cmd)
			continue
		}
		out[name] = strings.TrimSpace(string(exe))
	}
	if real, _ := filepath.EvalSymlinks(out["path"]); real != "" {
		if deb, _ := filepath.EvalSymlinks(out["debian"]); real == deb {
			delete(out, "path")
		}
	}
	return out
}

// leakMarkers maps each function of leaky.py to the line of its
// "# leak: FUNCTION" comment.
func leakMarkers(t *testing.T, script string) map[string]int {
	t.Helper()
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`# leak: ([a-z_]+)$`)
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]] = n
		}
	}
	return out
}

func pythonFrame(stack []report.Frame, fn string) (report.Frame, bool) {
	for _, f := range stack {
		if f.Module == "python" && f.Function == fn {
			return f, true
		}
	}
	return report.Frame{}, false
}

func TestRunLeakyPython(t *testing.T) {
	requireRoot(t)
	binaries(t)
	script := filepath.Join(repoRoot(), "testdata", "leaky-py", "leaky.py")
	markers := leakMarkers(t, script)
	if len(markers) != 6 {
		t.Fatalf("leaky.py marks %d leaks, want 6", len(markers))
	}
	for name, py := range pythons(t) {
		t.Run(name, func(t *testing.T) {
			r, tr, code := runTraced(t, nil, py, script)
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if len(tr.leaks) != len(markers) {
				t.Fatalf("script reported %d intentional leaks, want %d", len(tr.leaks), len(markers))
			}
			checkExact(t, r, tr)
			pid := r.RootPID()
			for _, l := range r.Leaks {
				fn, ok := tr.leaks[l.FD]
				if l.PID != pid || !ok {
					continue
				}
				f, ok := pythonFrame(l.Stack, fn)
				if !ok {
					t.Errorf("fd %d: no Python frame %s in %+v", l.FD, fn, l.Stack)
					continue
				}
				if f.Line != markers[fn] || f.File != script {
					t.Errorf("fd %d: %s at %s:%d, want %s:%d", l.FD, fn, f.File, f.Line, script, markers[fn])
				}
				if l.ClosedBy != "python-shutdown" {
					t.Errorf("fd %d: closed_by %q, want python-shutdown (still referenced at exit)", l.FD, l.ClosedBy)
				}
				// The C library's syscall wrapper and its caller in the
				// interpreter are unwound without frame pointers.
				if len(l.Stack) < 3 || !strings.Contains(l.Stack[0].Module, "libc") || l.Stack[1].Module == "" {
					t.Errorf("fd %d: native frames lost: %+v", l.FD, l.Stack[:min(3, len(l.Stack))])
				}
			}
			for _, s := range r.Sites {
				if s.Headline.Module != "python" || s.Headline.File != script || markers[s.Headline.Function] != s.Headline.Line {
					t.Errorf("site headline %+v is not a marked line of leaky.py", s.Headline)
				}
			}
			if len(r.Sites) != len(markers) {
				t.Errorf("%d sites, want one per leaking function (%d)", len(r.Sites), len(markers))
			}
		})
	}
}

// TestRunPairsPython: threads of a Python program read files and make
// sockets that they close at once, and keep a few files in a cache. The
// report is exactly the kernel's table at exit, each leak at its marked
// line, and most short-lived handles were settled in the kernel with their
// Python frames (Python processes pair too).
func TestRunPairsPython(t *testing.T) {
	requireRoot(t)
	binaries(t)
	script := filepath.Join(repoRoot(), "testdata", "pairing", "pairing.py")
	markers := leakMarkers(t, script)
	const rounds, threads, perRound = 1000, 4, 2
	for name, py := range pythons(t) {
		t.Run(name, func(t *testing.T) {
			r, tr, code := runTraced(t, nil, py, script, strconv.Itoa(rounds))
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			checkExact(t, r, tr)
			for _, l := range r.Leaks {
				if fn, ok := tr.leaks[l.FD]; ok && l.PID == r.RootPID() {
					if f, ok := pythonFrame(l.Stack, fn); !ok || f.Line != markers[fn] {
						t.Errorf("fd %d: want Python frame %s at line %d in %+v", l.FD, fn, markers[fn], l.Stack)
					}
				}
			}
			made := rounds * threads * perRound
			if r.Events.PairedInKernel < uint64(made*8/10) {
				t.Errorf("%d of %d short-lived handles settled in the kernel, want at least 80 %%", r.Events.PairedInKernel, made)
			}
			t.Logf("%d of %d short-lived handles settled in the kernel; %d records received", r.Events.PairedInKernel, made, r.Events.Received)
		})
	}
}

func TestRunBalancedPython(t *testing.T) {
	requireRoot(t)
	binaries(t)
	script := filepath.Join(repoRoot(), "testdata", "leaky-py", "leaky.py")
	for name, py := range pythons(t) {
		t.Run(name, func(t *testing.T) {
			r, tr, code := runTraced(t, []string{"--budget", "0"}, py, script, "balanced")
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			checkBalanced(t, r, tr)
		})
	}
}

// TestPythonSiteKeyStable: the same leaks get the same site keys from two
// runs and from two interpreter builds.
func TestPythonSiteKeyStable(t *testing.T) {
	requireRoot(t)
	binaries(t)
	script := filepath.Join(repoRoot(), "testdata", "leaky-py", "leaky.py")
	keys := func(py string) map[string]string {
		r, _, _ := runTraced(t, nil, py, script)
		out := map[string]string{}
		for _, s := range r.Sites {
			out[s.Headline.Function] = s.Key
		}
		return out
	}
	var first map[string]string
	runs := 0
	for _, py := range pythons(t) {
		for range 2 {
			k := keys(py)
			runs++
			if first == nil {
				first = k
				continue
			}
			for fn, key := range first {
				if k[fn] != key {
					t.Errorf("run %d with %s: site of %s is %q, first run had %q", runs, py, fn, k[fn], key)
				}
			}
		}
	}
	if len(first) != 6 {
		t.Errorf("first run had sites %v, want 6", first)
	}
}
