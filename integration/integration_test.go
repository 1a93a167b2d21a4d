// Package integration runs the real leaktrace binary, as root, on small C and
// Go programs with known leaks, and checks its report against the kernel's
// own truth: the programs list /proc/self/fd just before they exit.
package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/report"
)

// requireRoot skips a developer's non-root run, saying why; in CI (CI=true)
// these tests must run, so a missing privilege fails them.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("integration tests need root in CI (they load BPF programs)")
	}
	t.Skip("skipping: loading BPF programs needs root; run `sudo make test`")
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// TestMain removes what binaries built (32 MB a run, left in /tmp before).
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds leaktrace and the test programs once.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "leaktrace-it-")
		if buildErr != nil {
			return
		}
		root := repoRoot()
		steps := [][]string{
			{"go", "build", "-o", filepath.Join(buildDir, "leaktrace"), "./cmd/leaktrace"},
			{"go", "build", "-o", filepath.Join(buildDir, "leaky-go"), "./testdata/leaky-go"},
			{"go", "build", "-o", filepath.Join(buildDir, "gogen"), "./testdata/fdgen/gogen"},
			{"gcc", "-O1", "-g", "-fno-omit-frame-pointer", "-o", filepath.Join(buildDir, "leaky-c"), "testdata/leaky-c/leaky.c"},
			{"gcc", "-O2", "-g", "-fomit-frame-pointer", "-o", filepath.Join(buildDir, "leaky-c-nofp"), "testdata/leaky-c/leaky.c"},
			{"gcc", "-O1", "-g", "-Wall", "-o", filepath.Join(buildDir, "fdgen"), "testdata/fdgen/fdgen.c", "-lpthread"},
			{"gcc", "-O1", "-g", "-Wall", "-fno-omit-frame-pointer", "-o", filepath.Join(buildDir, "corpus"), "testdata/fdcorpus/corpus.c"},
			{"gcc", "-O1", "-g", "-Wall", "-o", filepath.Join(buildDir, "dupparked"), "testdata/dupparked/dupparked.c"},
			{"gcc", "-O1", "-g", "-Wall", "-fno-omit-frame-pointer", "-o", filepath.Join(buildDir, "fdexhaust"), "testdata/fdexhaust/fdexhaust.c"},
			{"gcc", "-O1", "-g", "-Wall", "-o", filepath.Join(buildDir, "memgrow"), "testdata/memgrow/memgrow.c"},
			{"gcc", "-O1", "-g", "-Wall", "-o", filepath.Join(buildDir, "mapgrow"), "testdata/mapgrow/mapgrow.c"},
			{"gcc", "-O1", "-g", "-Wall", "-fno-omit-frame-pointer", "-o", filepath.Join(buildDir, "pairing"), "testdata/pairing/pairing.c", "-lpthread"},
			{"gcc", "-O2", "-g", "-Wall", "-o", filepath.Join(buildDir, "forksites"), "testdata/forksites/forksites.c"},
			{"gcc", "-O2", "-g", "-Wall", "-o", filepath.Join(buildDir, "churn"), "bench/workloads/churn.c"},
			{"gcc", "-O1", "-g", "-Wall", "-fno-omit-frame-pointer", "-o", filepath.Join(buildDir, "memosites"), "testdata/memosites/memosites.c"},
			{"gcc", "-O1", "-g", "-Wall", "-fno-omit-frame-pointer", "-o", filepath.Join(buildDir, "forgetsites"), "testdata/forgetsites/forgetsites.c"},
		}
		for _, s := range steps {
			cmd := exec.Command(s[0], s[1:]...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

type truth struct {
	open  []int          // /proc/self/fd at exit, 0-2 left out
	leaks map[int]string // fd -> function that leaked it on purpose
}

func readTruth(t *testing.T, path string) truth {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading ground truth: %v", err)
	}
	defer f.Close()
	tr := truth{leaks: map[int]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		fd, err := strconv.Atoi(fields[1])
		if err != nil {
			t.Fatalf("bad truth line %q", sc.Text())
		}
		switch fields[0] {
		case "open":
			if fd > 2 {
				tr.open = append(tr.open, fd)
			}
		case "leak":
			tr.leaks[fd] = fields[2]
		}
	}
	slices.Sort(tr.open)
	return tr
}

// runTraced runs `leaktrace run --json` on argv and returns the report, the
// ground truth and leaktrace's exit code.
func runTraced(t *testing.T, flags []string, argv ...string) (*report.Report, truth, int) {
	t.Helper()
	dir := binaries(t)
	tmp := t.TempDir()
	jsonPath := filepath.Join(tmp, "report.json")
	truthPath := filepath.Join(tmp, "truth")
	args := append([]string{"run", "--json", jsonPath}, flags...)
	args = append(args, "--")
	args = append(args, argv...)
	cmd := exec.Command(filepath.Join(dir, "leaktrace"), args...)
	cmd.Env = append(os.Environ(), "LEAKTRACE_TRUTH="+truthPath)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running leaktrace: %v\n%s", err, out)
		}
		code = ee.ExitCode()
	}
	t.Logf("leaktrace output:\n%s", out)
	f, err := os.Open(jsonPath)
	if err != nil {
		t.Fatalf("no JSON report (exit %d): %v\n%s", code, err, out)
	}
	defer f.Close()
	r, err := exporter.ReadJSON(f)
	if err != nil {
		t.Fatalf("parsing JSON report: %v", err)
	}
	var tr truth
	if _, err := os.Stat(truthPath); err == nil {
		tr = readTruth(t, truthPath)
	}
	return r, tr, code
}

func checkExact(t *testing.T, r *report.Report, tr truth) {
	t.Helper()
	if !r.Complete {
		t.Errorf("report incomplete: %v", r.Notes)
	}
	pid := r.RootPID()
	var reported, counted []int
	byFD := map[int]report.Leak{}
	for _, l := range r.Leaks {
		if l.PID != pid || l.FD < 0 || l.Inherited {
			continue
		}
		reported = append(reported, l.FD)
		byFD[l.FD] = l
		if !l.Internal {
			counted = append(counted, l.FD)
		}
	}
	slices.Sort(reported)
	slices.Sort(counted)
	// Every fd the kernel had open at exit is reported, and nothing else.
	if !slices.Equal(reported, tr.open) {
		t.Errorf("leaked fds = %v, kernel had open at exit %v", reported, tr.open)
	}
	var want []int
	for fd := range tr.leaks {
		want = append(want, fd)
	}
	slices.Sort(want)
	if !slices.Equal(counted, want) {
		t.Errorf("counted leaks = %v, want the program's own %v", counted, want)
	}
	for fd, fn := range tr.leaks {
		l, ok := byFD[fd]
		if !ok {
			continue
		}
		if !report.HasFunction(l.Stack, fn) {
			t.Errorf("fd %d: stack does not name %s: %+v", fd, fn, l.Stack)
		}
	}
}

func TestRunLeakyC(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{"leaky-c", "leaky-c-nofp"} {
		t.Run(bin, func(t *testing.T) {
			r, tr, code := runTraced(t, nil, filepath.Join(binaries(t), bin))
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if len(tr.leaks) != 7 {
				t.Fatalf("program reported %d intentional leaks, want 7", len(tr.leaks))
			}
			checkExact(t, r, tr)
			for _, s := range r.Sites {
				if s.Headline.Function == "" || !strings.HasPrefix(s.Headline.Function, "leak_") {
					t.Errorf("site %s headline %+v does not name the leaking function", s.Key, s.Headline)
				}
				if s.Headline.Line == 0 || filepath.Base(s.Headline.File) != "leaky.c" {
					t.Errorf("site headline %+v lacks leaky.c:line", s.Headline)
				}
			}
		})
	}
}

// TestRunPairsAcrossThreads: four threads make short-lived files, sockets
// and pipes (each end waits for its own close), closed at once, after
// blocking, or by another thread, leak one end of a pipe, and hold one
// past the pairing window. The report is exactly the kernel's table at exit
// (the leaks made on purpose), and most handles were settled in the kernel:
// pairing is not only for a single thread's next syscall.
func TestRunPairsAcrossThreads(t *testing.T) {
	requireRoot(t)
	const rounds, threads, perRound = 2000, 4, 5
	r, tr, code := runTraced(t, nil, filepath.Join(binaries(t), "pairing"), strconv.Itoa(rounds))
	if code != 0 {
		t.Errorf("exit code %d, want the program's 0 (no budget given)", code)
	}
	checkExact(t, r, tr)
	made := rounds * threads * perRound
	if r.Events.PairedInKernel < uint64(made*8/10) {
		t.Errorf("%d of %d short-lived handles settled in the kernel, want at least 80 %%", r.Events.PairedInKernel, made)
	}
	t.Logf("%d of %d short-lived handles settled in the kernel; %d records received", r.Events.PairedInKernel, made, r.Events.Received)
}

func TestRunLeakyGo(t *testing.T) {
	requireRoot(t)
	r, tr, code := runTraced(t, nil, filepath.Join(binaries(t), "leaky-go"))
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if len(tr.leaks) != 5 {
		t.Fatalf("program reported %d intentional leaks, want 5", len(tr.leaks))
	}
	checkExact(t, r, tr)
}

func TestRunBalanced(t *testing.T) {
	requireRoot(t)
	for _, argv := range [][]string{{"leaky-c", "balanced"}, {"leaky-go", "balanced"}} {
		t.Run(argv[0], func(t *testing.T) {
			r, tr, _ := runTraced(t, []string{"--budget", "0"}, filepath.Join(binaries(t), argv[0]), argv[1])
			checkBalanced(t, r, tr)
		})
	}
}

// checkBalanced: a program that releases everything it makes, run with
// --budget 0, leaks nothing and keeps within the budget.
func checkBalanced(t *testing.T, r *report.Report, tr truth) {
	t.Helper()
	checkExact(t, r, tr)
	for _, s := range r.Sites {
		t.Errorf("balanced program leaked %d at %+v", s.Count, s.Headline)
	}
	if r.Budget == nil || r.Budget.Exceeded {
		t.Errorf("budget verdict %+v, want not exceeded", r.Budget)
	}
}

func TestRunExitCodes(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	lt := filepath.Join(dir, "leaktrace")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"command's own code wins", []string{"run", "--budget", "0", "--", "sh", "-c", "exec 7</etc/hostname; exit 3"}, 3},
		{"budget exceeded", []string{"run", "--budget", "0", "--", filepath.Join(dir, "leaky-c")}, 99},
		{"within budget", []string{"run", "--budget", "7", "--", filepath.Join(dir, "leaky-c")}, 0},
		{"command not found", []string{"run", "--", "no-such-command-leaktrace"}, 127},
		{"unknown flag", []string{"run", "--no-such-flag", "--", "true"}, 125},
		{"no such pid", []string{"attach", "999999999"}, 125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(lt, tt.args...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Errorf("exit %d, want %d\n%s", code, tt.want, out)
			}
			if tt.want >= 125 {
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				if len(lines) != 1 || !strings.HasPrefix(lines[0], "leaktrace: ") {
					t.Errorf("want one 'leaktrace: ' line, got %q", out)
				}
			}
		})
	}
}

// The traced command must get leaktrace's stdio and environment and no
// other fd of leaktrace's.
func TestRunPassesThrough(t *testing.T) {
	requireRoot(t)
	lt := filepath.Join(binaries(t), "leaktrace")
	cmd := exec.Command(lt, "run", "--", "sh", "-c", "ls /proc/self/fd; echo \"env=$LT_PASS\"; read x; echo \"in=$x\"")
	cmd.Env = append(os.Environ(), "LT_PASS=yes")
	cmd.Stdin = strings.NewReader("hello\n")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	if !strings.Contains(out, "env=yes") || !strings.Contains(out, "in=hello") {
		t.Errorf("stdio or environment not passed through: %q", out)
	}
	// ls lists 0, 1, 2 and its own directory fd (3): nothing else.
	lines := strings.Fields(strings.Split(out, "env=")[0])
	if !slices.Equal(lines, []string{"0", "1", "2", "3"}) {
		t.Errorf("child's fds = %v, want 0 1 2 and ls's own 3", lines)
	}
}

func TestDemo(t *testing.T) {
	requireRoot(t)
	lt := filepath.Join(binaries(t), "leaktrace")
	jsonPath := filepath.Join(t.TempDir(), "demo.json")
	out, err := exec.Command(lt, "demo", "--json", jsonPath).CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	r := readReport(t, jsonPath)
	want := map[string]string{
		"github.com/leaktrace/leaktrace/demo.loadSettings":   "file",
		"github.com/leaktrace/leaktrace/demo.connectBackend": "socket",
		"github.com/leaktrace/leaktrace/demo.startHelper":    "pipe",
	}
	found := map[string]bool{}
	for _, s := range r.Sites {
		if k, ok := want[s.Headline.Function]; ok && s.Kinds[k] > 0 {
			found[s.Headline.Function] = true
		}
		if strings.HasPrefix(s.Headline.Function, "runtime.") {
			t.Errorf("runtime site counted: %+v", s.Headline)
		}
	}
	for fn := range want {
		if !found[fn] {
			t.Errorf("demo report has no site headed by %s\n%s", fn, out)
		}
	}
}

func TestAttach(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	prog, pre := startSlowLeaker(t, dir)

	jsonPath := filepath.Join(t.TempDir(), "attach.json")
	start := time.Now()
	out, err := exec.Command(filepath.Join(dir, "leaktrace"), "attach", "--duration", "1500ms", "--min-age", "0s",
		"--interval", "200ms", "--json", jsonPath, strconv.Itoa(prog.Process.Pid)).CombinedOutput()
	if err != nil {
		t.Fatalf("attach: %v\n%s", err, out)
	}
	t.Logf("attach took %v, output:\n%s", time.Since(start), out)
	r := readReport(t, jsonPath)
	// The kernel's truth now: every fd reported as outstanding is still open
	// (the program never closes them), and so is the one opened before.
	open := map[int]bool{}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", prog.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		open[n] = true
	}
	if len(r.Leaks) < 20 {
		t.Fatalf("only %d outstanding handles reported in 1.5s of a leak every 10ms", len(r.Leaks))
	}
	for _, l := range r.Leaks {
		if !open[l.FD] {
			t.Errorf("reported fd %d is not open in /proc", l.FD)
		}
		if l.FD == pre {
			t.Errorf("fd %d, open before the attach, reported as a leak", pre)
		}
		if !report.HasFunction(l.Stack, "leak_open_file") {
			t.Errorf("fd %d: stack does not name leak_open_file", l.FD)
		}
	}
	foundPre := false
	for _, p := range r.Preexisting {
		if p.FD == pre && p.Target == "/etc/hostname" {
			foundPre = true
		}
	}
	if !foundPre {
		t.Errorf("fd %d (/etc/hostname, open before attach) not listed as preexisting: %+v", pre, r.Preexisting)
	}
	if len(r.Sites) != 1 || r.Sites[0].Headline.Function != "leak_open_file" || r.Sites[0].Growth < 20 {
		t.Errorf("want one growing site headed by leak_open_file, got %+v", r.Sites)
	}
}

func readReport(t *testing.T, path string) *report.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no JSON report: %v", err)
	}
	defer f.Close()
	r, err := exporter.ReadJSON(f)
	if err != nil {
		t.Fatalf("parsing JSON report: %v", err)
	}
	return r
}

// A ring buffer too small for the burst must drop events, and then every
// output says the result is incomplete, with the count.
func TestRunLostEvents(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	jsonPath := filepath.Join(t.TempDir(), "lost.json")
	out, err := exec.Command(filepath.Join(dir, "leaktrace"), "run", "--ring-buffer-size", "4096", "--json", jsonPath,
		"--", filepath.Join(dir, "leaky-c"), "balanced").CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	r := readReport(t, jsonPath)
	if r.Events.Lost == 0 {
		t.Fatalf("a 4 KiB ring buffer lost nothing (%d received)", r.Events.Received)
	}
	if r.Complete {
		t.Errorf("report says complete with %d events lost", r.Events.Lost)
	}
	if !strings.Contains(string(out), "INCOMPLETE") || !strings.Contains(string(out), strconv.FormatUint(r.Events.Lost, 10)) {
		t.Errorf("text report does not say INCOMPLETE with the lost count %d:\n%s", r.Events.Lost, out)
	}
}

// A thread still running at exit is a leak of the stack that created it,
// even through glibc's clone3, whose syscall lies outside any CFI.
func TestRunThreadLeak(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{"leaky-c", "leaky-c-nofp"} {
		t.Run(bin, func(t *testing.T) {
			r, _, code := runTraced(t, nil, filepath.Join(binaries(t), bin), "thread")
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if len(r.Sites) != 1 || r.Sites[0].Kinds["thread"] != 1 || r.Sites[0].Headline.Function != "leak_thread" {
				t.Fatalf("want one thread site headed by leak_thread, got %+v", r.Sites)
			}
		})
	}
}

// startSlowLeaker starts leaky-c's slow mode (a file leaked every 10 ms) and
// waits for its "ready N" line: N fds were open before its loop. The program
// is killed when the test ends.
func startSlowLeaker(t *testing.T, dir string) (*exec.Cmd, int) {
	t.Helper()
	prog := exec.Command(filepath.Join(dir, "leaky-c"), "slow")
	stdout, err := prog.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Process.Kill(); prog.Wait() })
	var pre int
	if _, err := fmt.Fscanf(stdout, "ready %d\n", &pre); err != nil {
		t.Fatalf("program not ready: %v", err)
	}
	return prog, pre
}

// TestRunForkedChildrenShareSites: a forked child runs its parent's code at
// the same addresses, so it shares the parent's image: the sites the parent
// taught the kernel are the child's from its first creation. Fifty children
// make 20 short-lived files each at the parent's site, too few and too fast
// to learn anything from alone: none may send the site anew (each would, in
// an image of its own), and their handles settle in the kernel.
func TestRunForkedChildrenShareSites(t *testing.T) {
	requireRoot(t)
	const children, rounds = 50, 20
	r, _, code := runTraced(t, nil, filepath.Join(binaries(t), "forksites"), strconv.Itoa(children), strconv.Itoa(rounds))
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	st := r.Events.Stacks
	if st == nil {
		t.Fatal("no events.stacks in the report")
	}
	if st.New >= children/2 {
		t.Errorf("%d sites sent anew for %d forked children: they learned the parent's site again", st.New, children)
	}
	// The parent's 500 creations and its start (the loader) may be copies.
	if st.Copy > 700 {
		t.Errorf("%d stacks sent as copies: more than the parent's learning", st.Copy)
	}
	if st.Site < children*rounds {
		t.Errorf("%d stacks sent as a known site, want at least the children's %d", st.Site, children*rounds)
	}
	if r.Events.PairedInKernel < children*rounds*8/10 {
		t.Errorf("%d handles settled in the kernel, want most of the children's %d", r.Events.PairedInKernel, children*rounds)
	}
	t.Logf("stacks %+v, %d settled in the kernel", *st, r.Events.PairedInKernel)
}

// TestRunWalkMemoTellsCallersApart: the kernel finds a hot site from a
// memo of its last walk from the same frame, checked against the stack words
// that walk read. Two callers with alike frames put the open at the same pc,
// sp and bp: after thousands of creations through one (made from the memo),
// leaks through the other must be named by their own caller, and back.
func TestRunWalkMemoTellsCallersApart(t *testing.T) {
	requireRoot(t)
	const warm = 3000
	r, _, code := runTraced(t, nil, filepath.Join(binaries(t), "memosites"), strconv.Itoa(warm))
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	st := r.Events.Stacks
	if st == nil {
		t.Fatal("no events.stacks in the report")
	}
	if st.Memo < warm {
		t.Errorf("stacks %+v: fewer than %d found from a memo (the warm-up after learning is %d creations at one frame)", *st, warm, warm)
	}
	by := map[string]int{}
	for _, l := range r.Leaks {
		if l.PID != r.RootPID() || l.Kind != "file" {
			continue
		}
		var a, b bool
		for _, f := range l.Stack {
			a = a || f.Function == "via_a"
			b = b || f.Function == "via_b"
		}
		switch {
		case a && b:
			by["both"]++
		case a:
			by["via_a"]++
		case b:
			by["via_b"]++
		default:
			by["neither"]++
		}
	}
	if by["via_a"] != 3 || by["via_b"] != 5 || len(by) != 2 {
		t.Errorf("leaks by caller %v, want via_a 3, via_b 5", by)
	}
	t.Logf("stacks %+v, leaks by caller %v", *st, by)
}

// TestRunForgetsSites: past the sites leaktrace keeps (16,384 in one table)
// it forgets them on both sides, the kernel's first, while a hot site's walk
// is remembered in the kernel: the hot site's leaks made after the forget are
// still named by their stack (no stack arrives as a site leaktrace let go of).
func TestRunForgetsSites(t *testing.T) {
	requireRoot(t)
	r, _, code := runTraced(t, nil, filepath.Join(binaries(t), "forgetsites"))
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	st := r.Events.Stacks
	if st == nil {
		t.Fatal("no events.stacks in the report")
	}
	// Sites sent with their pcs: past the bound, so a table was forgotten.
	if st.New <= 1<<14 {
		t.Fatalf("stacks %+v: %d new sites, not past the 16,384 kept", *st, st.New)
	}
	if st.Unknown != 0 {
		t.Errorf("%d stacks named a site leaktrace had let go of", st.Unknown)
	}
	hot := 0
	for _, l := range r.Leaks {
		if l.PID != r.RootPID() || l.Kind != "file" {
			continue
		}
		named := false
		for _, f := range l.Stack {
			named = named || f.Function == "hot"
		}
		if !named {
			t.Errorf("leak fd %d not named by hot(): %+v", l.FD, l.Stack)
			continue
		}
		hot++
	}
	if hot != 5 {
		t.Errorf("%d leaks through hot(), want 5", hot)
	}
	t.Logf("stacks %+v", *st)
}

// TestRunWalkMemoPython: Debian's python3 (no frame pointers, its eval
// loop's frames deep in the C stack) opening files from one line of a
// script: the native walk is found from a memo for most creations, each
// with the same Python frames.
func TestRunWalkMemoPython(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 is needed: %v", err)
	}
	const n = 3000
	r, _, code := runTraced(t, nil, "/usr/bin/python3", "-c",
		fmt.Sprintf("for _ in range(%d):\n    open('/dev/null', 'rb', buffering=0).close()", n))
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	st := r.Events.Stacks
	if st == nil {
		t.Fatal("no events.stacks in the report")
	}
	if st.Memo < n/2 {
		t.Errorf("stacks %+v: fewer than %d of the script's %d opens found from a memo", *st, n/2, n)
	}
	t.Logf("stacks %+v", *st)
}

// TestRunStackSites: stacks the kernel unwinds with the rules it learned
// name the same code as stacks Go unwinds from a copy. Each program runs
// with and without --no-stack-sites; every intentional leak's stack must
// agree frame for frame, but that one may go deeper (the kernel reads the
// live stack; Go's copy has an end). Most of the threaded program's stacks
// must have crossed as a site's hash.
func TestRunStackSites(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	for _, argv := range [][]string{
		{filepath.Join(dir, "leaky-c-nofp")},
		{filepath.Join(dir, "pairing"), "2000"},
	} {
		t.Run(filepath.Base(argv[0]), func(t *testing.T) {
			withSites, tr, _ := runTraced(t, nil, argv...)
			checkExact(t, withSites, tr)
			copies, trCopies, _ := runTraced(t, []string{"--no-stack-sites"}, argv...)
			checkExact(t, copies, trCopies)
			st, sc := withSites.Events.Stacks, copies.Events.Stacks
			if st == nil || sc == nil {
				t.Fatal("reports without events.stacks")
			}
			if sc.Site+sc.New != 0 || sc.Copy == 0 {
				t.Errorf("--no-stack-sites: %+v, want copies only", *sc)
			}
			if st.Unknown != 0 {
				t.Errorf("%d stacks named a site leaktrace did not have", st.Unknown)
			}
			all := st.Site + st.New + st.Copy
			if filepath.Base(argv[0]) == "pairing" && st.Site < all*8/10 {
				t.Errorf("stacks %+v: want at least 80 %% sent as a known site", *st)
			}
			t.Logf("stacks with sites %+v, without %+v", *st, *sc)
			// A stack per leaking function (threads race for fd numbers).
			byFunc := func(r *report.Report, tr truth) map[string][]report.Frame {
				m := map[string][]report.Frame{}
				for _, l := range r.Leaks {
					if fn, ok := tr.leaks[l.FD]; ok && l.PID == r.RootPID() && m[fn] == nil {
						m[fn] = l.Stack
					}
				}
				return m
			}
			sa, sb := byFunc(withSites, tr), byFunc(copies, trCopies)
			if len(sa) == 0 {
				t.Fatal("no intentional leak with a stack")
			}
			for fn, a := range sa {
				b := sb[fn]
				if len(a) == 0 || len(b) == 0 {
					t.Errorf("%s: no stack in one of the reports (%d, %d frames)", fn, len(a), len(b))
					continue
				}
				n := min(len(a), len(b))
				for i := range n {
					if a[i].Function != b[i].Function || a[i].Line != b[i].Line || a[i].File != b[i].File {
						t.Errorf("%s frame %d: kernel-unwound %s %s:%d, Go-unwound %s %s:%d", fn, i,
							a[i].Function, a[i].File, a[i].Line, b[i].Function, b[i].File, b[i].Line)
						break
					}
				}
				if len(a) < len(b) {
					t.Errorf("%s: kernel-unwound stack of %d frames, shorter than Go's %d", fn, len(a), len(b))
				}
			}
		})
	}
}

// TestNewProcessesShareFileRules: a program run again and again, as CI
// scripts and cron jobs do. Each run is a new process image at new
// addresses, but the code is the same files: from the second run on the
// kernel unwinds with the rules taught for the files (the dynamic loader's
// opens too), and every run's leaks still name the function that made them
// (the program has no frame pointers: only CFI rules unwind it). Their
// sites are named by file offsets, so they cross as the first run's. An agent
// counts the copies the later runs cost, after the first has been learned
// (how many the first sends depends on how soon Go teaches it: 30-250).
func TestNewProcessesShareFileRules(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(binaries(t), "leaky-c-nofp")
	const runs = 8

	t.Run("run", func(t *testing.T) {
		r, _, code := runTraced(t, nil, "sh", "-c", strings.Repeat(bin+"; ", runs))
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
		if st := r.Events.Stacks; st == nil || st.FileRules == 0 {
			t.Fatalf("no rule was found by file: %+v", st)
		}
		named := map[int]int{}
		for _, l := range r.Leaks {
			if l.PID == r.RootPID() || l.FD < 0 || l.Inherited {
				continue
			}
			for _, fn := range []string{"leak_open_file", "leak_fopen", "leak_socket", "leak_pipe", "leak_dup", "leak_eventfd"} {
				if report.HasFunction(l.Stack, fn) {
					named[l.PID]++
					break
				}
			}
		}
		if len(named) != runs {
			t.Fatalf("leaks named by function in %d processes, want %d: %v", len(named), runs, named)
		}
		for pid, n := range named {
			if n != 7 {
				t.Errorf("pid %d: %d of its 7 leaks name their function", pid, n)
			}
		}
		t.Logf("stacks %+v", *r.Events.Stacks)
	})

	t.Run("agent", func(t *testing.T) {
		base := startAgent(t, "--comm", filepath.Base(bin), "--interval", "1s")
		counts := func() (copies, fromFile, all, fresh float64) {
			mfs := scrape(t, base)
			copies = sum(series(mfs, "leaktrace_stacks_sent_total", map[string]string{"form": "copy"}))
			fresh = sum(series(mfs, "leaktrace_stacks_sent_total", map[string]string{"form": "new"}))
			all = sum(series(mfs, "leaktrace_stacks_sent_total", nil))
			fromFile = sum(series(mfs, "leaktrace_unwind_rules_from_file_total", nil))
			return
		}
		// settled waits until the agent has read what the runs sent.
		settled := func(min float64) {
			last := -1.0
			waitFor(t, 30*time.Second, "the runs' stacks", func() bool {
				_, _, all, _ := counts()
				done := all >= min && all == last
				last = all
				if !done {
					time.Sleep(400 * time.Millisecond)
				}
				return done
			})
		}
		if out, err := exec.Command(bin).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, out)
		}
		settled(1)
		c0, f0, a0, n0 := counts()
		for range runs {
			if out, err := exec.Command(bin).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", bin, err, out)
			}
		}
		settled(a0 + runs*7)
		c1, f1, a1, n1 := counts()
		t.Logf("first run: %.0f stacks, %.0f copies, %.0f sites sent anew; %d more runs: %.0f stacks, %.0f copies, %.0f sites anew, %.0f rules from files",
			a0, c0, n0, runs, a1-a0, c1-c0, n1-n0, f1-f0)
		// Their sites are named by file offsets: the first of them to
		// unwind a site whole sends it (about 20), the others its hash.
		// (Each sent all of its own before: 8 runs, over 160.)
		if n1-n0 > 40 {
			t.Errorf("%d later runs sent %.0f sites anew: their sites were not the first run's", runs, n1-n0)
		}
		// Without rules by file each run sent 40 copies or more; with them
		// a later run still sends the odd copy where it is the first to
		// take a path through code (the dynamic loader's), 2-11 in all.
		if c1-c0 > 3*runs {
			t.Errorf("%d later runs sent %.0f stack copies: new processes did not use the rules of their files", runs, c1-c0)
		}
		if f1 == f0 {
			t.Error("no rule was found by file")
		}
	})
}
