package integration

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/report"
)

// interp is a CPython to test with: an executable on the host, or Debian's
// python3 in a root made by scripts/ci/python-roots.sh, run in its own mount
// namespace with /proc mounted, chrooted (as a container would run it).
type interp struct {
	name string
	exe  string // host path, or the path inside root
	root string // "" on the host
}

// pyenvRoot is where pyenv keeps its versions: $PYENV_ROOT, else ~/.pyenv,
// else /root/.pyenv (machines of this project's kind preinstall it there).
func pyenvRoot() string {
	for _, d := range []string{os.Getenv("PYENV_ROOT"), os.ExpandEnv("$HOME/.pyenv"), "/root/.pyenv"} {
		if d == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(d, "versions")); err == nil && fi.IsDir() {
			return d
		}
	}
	return ""
}

// pyenvPython returns pyenv's real interpreter of a minor version (its shim is
// a bash script), the newest patch release installed.
func pyenvPython(minor string) string {
	root := pyenvRoot()
	if root == "" {
		return ""
	}
	vs, _ := filepath.Glob(filepath.Join(root, "versions", minor+".*"))
	sort.Strings(vs)
	for i := len(vs) - 1; i >= 0; i-- {
		exe := filepath.Join(vs[i], "bin", "python"+minor)
		if _, err := os.Stat(exe); err == nil {
			return exe
		}
	}
	return ""
}

const pyRoots = "/var/cache/leaktrace-py"

// supportedPythons lists every interpreter of a supported version this
// machine has. In CI each one is required: a missing one fails the test.
func supportedPythons(t *testing.T) []interp {
	t.Helper()
	var out []interp
	missing := func(what, how string) {
		if os.Getenv("CI") != "" {
			t.Errorf("%s is needed in CI: %s", what, how)
			return
		}
		t.Logf("%s not found (%s): not tested", what, how)
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		out = append(out, interp{name: "debian-3.11-static", exe: "/usr/bin/python3"})
	} else {
		missing("Debian's /usr/bin/python3", "apt-get install python3")
	}
	for _, minor := range []string{"3.11", "3.12", "3.13"} {
		if exe := pyenvPython(minor); exe != "" {
			out = append(out, interp{name: "pyenv-" + minor, exe: exe})
		} else {
			missing("pyenv's CPython "+minor, "pyenv install "+minor)
		}
	}
	for _, suite := range []string{"forky", "trixie"} {
		root := filepath.Join(pyRoots, suite)
		v, err := os.ReadFile(filepath.Join(root, ".leaktrace-ready"))
		if err != nil {
			missing("the Debian "+suite+" root", "bash scripts/ci/python-roots.sh")
			continue
		}
		out = append(out, interp{name: suite + "-" + strings.TrimSpace(string(v)) + "-chroot", exe: "/usr/bin/python3", root: root})
	}
	return out
}

// pyRun is one traced run of a script of testdata/leaky-py.
type pyRun struct {
	r      *report.Report
	tr     truth
	script string // the script's path as the interpreter saw it
	out    string
}

// runPython runs script with mode under leaktrace run. For a chrooted
// interpreter the scripts are copied into its root, and the process runs in
// a mount namespace of its own (unshare -m) where its root has /proc.
func runPython(t *testing.T, in interp, script string, args ...string) pyRun {
	t.Helper()
	dir := binaries(t)
	src := filepath.Join(repoRoot(), "testdata", "leaky-py")
	tmp := t.TempDir()
	if in.root != "" {
		var err error
		tmp, err = os.MkdirTemp(filepath.Join(in.root, "tmp"), "leaktrace-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(tmp) })
	}
	for _, f := range []string{script, "truth.py"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inside := strings.TrimPrefix(tmp, in.root) // the directory as the interpreter sees it
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	argv := []string{filepath.Join(dir, "leaktrace"), "run", "--json", jsonPath, "--"}
	pyArgs := append([]string{filepath.Join(inside, script)}, args...)
	if in.root == "" {
		argv = append(argv, in.exe)
	} else {
		argv = append(argv, "unshare", "-m", "sh", "-c",
			fmt.Sprintf(`mount -t proc proc %s/proc && exec chroot %s %s "$@"`, in.root, in.root, in.exe), "sh")
	}
	argv = append(argv, pyArgs...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LEAKTRACE_TRUTH="+filepath.Join(inside, "truth"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("leaktrace run: %v\n%s", err, out)
	}
	f, err := os.Open(jsonPath)
	if err != nil {
		t.Fatalf("no JSON report: %v\n%s", err, out)
	}
	defer f.Close()
	r, err := exporter.ReadJSON(f)
	if err != nil {
		t.Fatalf("parsing JSON report: %v", err)
	}
	return pyRun{r: r, tr: readTruth(t, filepath.Join(tmp, "truth")), script: filepath.Join(inside, script), out: string(out)}
}

// unnamedPython counts Python frames without a function in the report's
// leaks, and says so in a note too.
func unnamedPython(r *report.Report) int {
	n := 0
	for _, l := range r.Leaks {
		for _, f := range l.Stack {
			if f.Module == "python" && f.Function == "" {
				n++
			}
		}
	}
	for _, note := range r.Notes {
		if strings.Contains(note, "could not be named") && n == 0 {
			n = -1
		}
	}
	return n
}

// TestPythonVersions: the service script leaks a file, a socket, a Popen
// pipe and child, a sqlite3 connection, a ThreadPoolExecutor thread and a
// NamedTemporaryFile, then calls os._exit(0). On every supported
// interpreter: each leak is found (the fds equal /proc's), its site's headline
// is the leaking function at its line, the thread is named by the function
// that submitted the work, and no Python frame is left unnamed.
func TestPythonVersions(t *testing.T) {
	requireRoot(t)
	binaries(t)
	markers := leakMarkers(t, filepath.Join(repoRoot(), "testdata", "leaky-py", "service.py"))
	if len(markers) != 6 {
		t.Fatalf("service.py marks %d leaking functions, want 6", len(markers))
	}
	for _, in := range supportedPythons(t) {
		t.Run(in.name, func(t *testing.T) {
			run := runPython(t, in, "service.py", "exit")
			r := run.r
			if t.Failed() {
				return
			}
			defer func() {
				if t.Failed() {
					t.Logf("leaktrace output:\n%s", run.out)
				}
			}()
			if len(run.tr.leaks) != 5 {
				t.Fatalf("script reported %d leaked fds, want 5", len(run.tr.leaks))
			}
			checkExact(t, r, run.tr)
			for _, note := range r.Notes {
				if strings.Contains(note, "not supported") {
					t.Errorf("supported interpreter named unsupported: %s", note)
				}
			}
			if n := unnamedPython(r); n != 0 {
				t.Errorf("%d Python frames unnamed (want 0); notes %v", n, r.Notes)
			}
			pid := r.RootPID()
			kinds := map[string]string{} // leaking function -> kinds seen
			for _, l := range r.Leaks {
				if l.PID != pid || l.Internal {
					continue
				}
				fn := ""
				for _, f := range l.Stack {
					if f.Module == "python" && markers[f.Function] != 0 {
						fn = f.Function
						if f.File != run.script || f.Line != markers[fn] {
							t.Errorf("%s leak (fd %d): %s at %s:%d, want %s:%d", l.Kind, l.FD, fn, f.File, f.Line, run.script, markers[fn])
						}
						break
					}
				}
				if fn == "" {
					t.Errorf("%s leak (fd %d, %s) names no leaking function: %+v", l.Kind, l.FD, l.Target, l.Stack)
					continue
				}
				kinds[fn] += l.Kind + " "
			}
			if !strings.Contains(kinds["start_worker"], "thread") {
				t.Errorf("no thread leak named start_worker: %v", kinds)
			}
			if !strings.Contains(kinds["spawn_helper"], "process") || !strings.Contains(kinds["spawn_helper"], "pipe") {
				t.Errorf("spawn_helper should leak a pipe and a child process: %v", kinds)
			}
			headlines := map[string]bool{}
			for _, s := range r.Sites {
				h := s.Headline
				if h.Module != "python" || markers[h.Function] == 0 || h.Line != markers[h.Function] || h.File != run.script {
					t.Errorf("site %s headline %+v is not a marked line of %s", s.Key, h, run.script)
				}
				headlines[h.Function] = true
			}
			for fn := range markers {
				if !headlines[fn] {
					t.Errorf("no site headed by %s; sites %v", fn, headlines)
				}
			}
		})
	}
}

// TestPythonFinalization: the shutdown rule both ways on every supported
// interpreter. Handles still referenced when the program ends are closed by
// the interpreter's finalization and count as leaks (closed_by
// python-shutdown); a handle exit-time code opens and closes during
// finalization (a __del__ run by module teardown) is no leak.
func TestPythonFinalization(t *testing.T) {
	requireRoot(t)
	binaries(t)
	for _, in := range supportedPythons(t) {
		t.Run(in.name, func(t *testing.T) {
			run := runPython(t, in, "service.py", "finalize")
			r := run.r
			defer func() {
				if t.Failed() {
					t.Logf("leaktrace output:\n%s", run.out)
				}
			}()
			if len(run.tr.leaks) != 5 {
				t.Fatalf("script reported %d leaked fds, want 5", len(run.tr.leaks))
			}
			pid := r.RootPID()
			shut := map[int]bool{}
			for _, l := range r.Leaks {
				if l.PID != pid {
					continue
				}
				if report.HasFunction(l.Stack, "ExitTimeProbe.__del__") {
					t.Errorf("fd %d opened and closed during finalization reported as a leak: %+v", l.FD, l)
				}
				if l.ClosedBy == "python-shutdown" {
					shut[l.FD] = true
				}
			}
			for fd, fn := range run.tr.leaks {
				if !shut[fd] {
					t.Errorf("fd %d of %s: not reported as closed by python-shutdown", fd, fn)
				}
			}
		})
	}
}

// TestPythonUnsupportedNamed: an interpreter whose frames leaktrace cannot
// walk is named in the report, not silently left with native stacks: pyenv's
// 3.10, and pyenv's 3.13 run with a copy of its libpython whose version
// (Py_Version and _Py_DebugOffsets) says 3.15.
func TestPythonUnsupportedNamed(t *testing.T) {
	requireRoot(t)
	binaries(t)
	need := func(minor string) string {
		exe := pyenvPython(minor)
		if exe == "" {
			if os.Getenv("CI") != "" {
				t.Fatalf("pyenv's CPython %s is needed in CI (pyenv install %s)", minor, minor)
			}
			t.Skipf("no pyenv CPython %s", minor)
		}
		return exe
	}
	t.Run("3.10", func(t *testing.T) {
		run := runPython(t, interp{name: "pyenv-3.10", exe: need("3.10")}, "service.py", "exit")
		wantNote(t, run.r, fmt.Sprintf("python3.10 at pid %d: Python frames not supported", run.r.RootPID()))
	})
	t.Run("3.15", func(t *testing.T) {
		exe := need("3.13")
		dir := t.TempDir()
		lib := filepath.Join(filepath.Dir(filepath.Dir(exe)), "lib", "libpython3.13.so.1.0")
		patchPythonVersion(t, lib, filepath.Join(dir, "libpython3.13.so.1.0"), 0x030f00a0)
		t.Setenv("LD_LIBRARY_PATH", dir) // before the executable's RUNPATH
		run := runPython(t, interp{name: "patched-3.15", exe: exe}, "service.py", "exit")
		wantNote(t, run.r, fmt.Sprintf("python3.15 at pid %d: Python frames not supported", run.r.RootPID()))
	})
}

func wantNote(t *testing.T, r *report.Report, want string) {
	t.Helper()
	for _, n := range r.Notes {
		if strings.Contains(n, want) && strings.Contains(n, "native stacks only") {
			return
		}
	}
	t.Errorf("no note %q in %v", want, r.Notes)
}

// patchPythonVersion copies a libpython, setting the version it declares in
// Py_Version and in _PyRuntime's _Py_DebugOffsets.
func patchPythonVersion(t *testing.T, src, dst string, version uint32) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	offset := func(vaddr uint64) uint64 {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Filesz {
				return vaddr - p.Vaddr + p.Off
			}
		}
		t.Fatalf("%#x is not in %s", vaddr, src)
		return 0
	}
	patched := 0
	for _, s := range syms {
		switch s.Name {
		case "Py_Version":
			binary.LittleEndian.PutUint32(b[offset(s.Value):], version)
			patched++
		case "_PyRuntime":
			off := offset(s.Value)
			if string(b[off:off+8]) != "xdebugpy" {
				t.Fatalf("no _Py_DebugOffsets cookie in %s", src)
			}
			binary.LittleEndian.PutUint64(b[off+8:], uint64(version))
			patched++
		}
	}
	if patched != 2 {
		t.Fatalf("patched %d of Py_Version and _PyRuntime in %s", patched, src)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestPythonThreadStates: a thread's Python frames are found from the
// thread state the kernel found for it last, checked, not searched for in
// the interpreter's list (a pool's idle threads ahead of it), on every
// version; and a state freed and taken by a later thread is never another
// thread's frames: each of threads.py's leaks names its own function and
// line.
func TestPythonThreadStates(t *testing.T) {
	requireRoot(t)
	binaries(t)
	markers := leakMarkers(t, filepath.Join(repoRoot(), "testdata", "leaky-py", "threads.py"))
	if len(markers) != 2 {
		t.Fatalf("threads.py marks %d leaking functions, want 2", len(markers))
	}
	for _, in := range supportedPythons(t) {
		t.Run(in.name, func(t *testing.T) {
			run := runPython(t, in, "threads.py")
			r := run.r
			if t.Failed() {
				return
			}
			if len(run.tr.leaks) != 34 {
				t.Fatalf("script reported %d leaked fds, want 34", len(run.tr.leaks))
			}
			checkExact(t, r, run.tr)
			got := map[string]int{}
			for _, l := range r.Leaks {
				if l.PID != r.RootPID() || l.Internal || l.Kind != "file" {
					continue
				}
				named := false
				for _, f := range l.Stack {
					if f.Module == "python" && markers[f.Function] != 0 {
						if f.File != run.script || f.Line != markers[f.Function] {
							t.Errorf("leak (fd %d): %s at %s:%d, want %s:%d", l.FD, f.Function, f.File, f.Line, run.script, markers[f.Function])
						}
						got[f.Function]++
						named = true
						break
					}
				}
				if !named {
					t.Errorf("leak (fd %d, %s) names no leaking function: %+v", l.FD, l.Target, l.Stack)
				}
			}
			if got["leak_in_worker"] != 32 || got["leak_in_main"] != 2 {
				t.Errorf("leaks by function %v, want leak_in_worker 32 and leak_in_main 2", got)
			}
			st := r.Events.Stacks
			if st == nil || st.Python == 0 || st.PythonThreadKnown < st.Python/2 {
				t.Errorf("stacks %+v: want most Python stacks from the thread's known state", st)
			} else {
				t.Logf("%d of %d Python stacks from the thread's known state", st.PythonThreadKnown, st.Python)
			}
			if t.Failed() {
				t.Logf("leaktrace output:\n%s", run.out)
			}
		})
	}
}
