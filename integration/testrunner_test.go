package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

// processOf finds the process a leak belongs to.
func processOf(r *report.Report, pid int) (report.Process, bool) {
	for _, p := range r.Processes {
		if p.PID == pid {
			return p, true
		}
	}
	return report.Process{}, false
}

// TestGoTestUnderRun runs a whole `go test` (the go command, compile, link,
// vet, the test binary and a child the test starts) under `leaktrace run`,
// with the toolchain's own handles suppressed, and checks that the two leaks
// of the test suite are attributed to the test binary's processes and to the
// functions that made them, and that the budget holds them.
func TestGoTestUnderRun(t *testing.T) {
	requireRoot(t)
	root := repoRoot()
	supp := filepath.Join(root, "docs", "go-toolchain.supp")
	gotest := []string{filepath.Join(runtimeGOROOT(), "bin", "go"), "test", "-count=1", "./testdata/leaky-gotest"}
	tmp := t.TempDir()
	jsonPath := filepath.Join(tmp, "r.json")

	run := func(budget string) (int, string) {
		args := append([]string{"run", "--json", jsonPath, "--suppressions", supp, "--budget", budget, "--"}, gotest...)
		cmd := exec.Command(filepath.Join(binaries(t), "leaktrace"), args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run("1"); code != 99 {
		t.Errorf("--budget 1: exit %d, want 99 (the suite leaks 2)\n%s", code, out)
	}
	code, out := run("2")
	if code != 0 {
		t.Fatalf("--budget 2: exit %d, want 0\n%s", code, out)
	}
	t.Logf("leaktrace output:\n%s", out)
	if !strings.Contains(out, "\nexecutables: ") {
		t.Errorf("text report has no per-executable section")
	}
	r := readReport(t, jsonPath)
	if len(r.Processes) < 5 {
		t.Errorf("%d processes traced; go test runs at least go, compile, link, the test and its child", len(r.Processes))
	}
	want := map[string]string{"file": "leaky-gotest.leakFile", "socket": "leaky-gotest.leakSocket"}
	testPIDs := map[int]bool{}
	for _, l := range r.Leaks {
		if !l.Counted {
			continue
		}
		fn, ok := want[l.Kind]
		if !ok || !strings.HasSuffix(l.Exe, "leaky-gotest.test") {
			t.Errorf("counted leak outside the test suite: %s %s in %s (%s)", l.Kind, l.Target, l.Exe, l.SuppressedBy)
			continue
		}
		if !stackHasSuffix(l.Stack, fn) {
			t.Errorf("%s leak: stack does not name %s: %+v", l.Kind, fn, l.Stack)
		}
		testPIDs[l.PID] = true
		delete(want, l.Kind)
		p, ok := processOf(r, l.PID)
		if !ok {
			t.Errorf("leak of pid %d, which is not in the process list", l.PID)
			continue
		}
		parent, _ := processOf(r, p.PPID)
		// The socket leaks in the child the test binary started: two levels
		// below go.
		if l.Kind == "socket" && !strings.HasSuffix(parent.Exe, "leaky-gotest.test") {
			t.Errorf("socket leaked in pid %d whose parent %d runs %q, want the test binary", p.PID, p.PPID, parent.Exe)
		}
	}
	if len(want) > 0 {
		t.Errorf("leaks not reported: %v", want)
	}
	if len(testPIDs) != 2 {
		t.Errorf("leaks in %d test processes, want 2 (the test and its child)", len(testPIDs))
	}
	var exe *report.Executable
	for i, e := range r.Executables {
		if strings.HasSuffix(e.Exe, "leaky-gotest.test") {
			exe = &r.Executables[i]
		}
	}
	if exe == nil || exe.Leaked != 2 || exe.Processes < 2 || exe.Kinds["file"] != 1 || exe.Kinds["socket"] != 1 {
		t.Errorf("test binary's executable summary %+v", exe)
	}
}

func stackHasSuffix(stack []report.Frame, suffix string) bool {
	for _, f := range stack {
		if strings.HasSuffix(f.Function, suffix) {
			return true
		}
	}
	return false
}

func runtimeGOROOT() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "/usr/local/go"
	}
	return strings.TrimSpace(string(out))
}

// TestPythonRunnerUnderRun runs a multi-process Python test runner (pytest is
// not installed; testdata/pyrunner does what pytest-xdist does: one worker
// process per test module) and checks each leak a test reported is in the
// report, counted, in the worker that made it, with a stack.
func TestPythonRunnerUnderRun(t *testing.T) {
	requireRoot(t)
	// The interpreter itself, not a version manager's shell shim.
	py, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3 is needed: %v", err)
	}
	root := repoRoot()
	tmp := t.TempDir()
	jsonPath, truthPath := filepath.Join(tmp, "r.json"), filepath.Join(tmp, "truth")
	cmd := exec.Command(filepath.Join(binaries(t), "leaktrace"), "run", "--json", jsonPath, "--budget", "socket=1,file=1", "--",
		strings.TrimSpace(string(py)), "testdata/pyrunner/runner.py", "testdata/pyrunner/test_leaky.py", "testdata/pyrunner/test_clean.py")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "LEAKY_PY_TRUTH="+truthPath)
	out, err := cmd.CombinedOutput()
	t.Logf("leaktrace output:\n%s", out)
	if err != nil {
		t.Fatalf("leaktrace run: %v (want exit 0: the runner passes and its leaks are within budget)", err)
	}
	r := readReport(t, jsonPath)
	f, err := os.Open(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runner := r.RootPID()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		pid, _ := strconv.Atoi(fields[0])
		kind, target := fields[1], fields[2]
		found := false
		for _, l := range r.Leaks {
			if l.PID == pid && l.Kind == kind && strings.HasPrefix(l.Target, target) && l.Counted && len(l.Stack) > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("test leaked %s %s in pid %d: not in the report as a counted leak with a stack", kind, target, pid)
		}
		if p, ok := processOf(r, pid); !ok || p.PPID != runner {
			t.Errorf("worker %d: process %+v, want a child of the runner %d", pid, p, runner)
		}
	}
	if n != 2 {
		t.Errorf("the tests reported %d leaks, want 2", n)
	}
	if r.Budget == nil || r.Budget.Exceeded || r.Budget.Leaked != 2 {
		t.Errorf("budget %+v, want 2 leaked within socket=1,file=1", r.Budget)
	}
}
