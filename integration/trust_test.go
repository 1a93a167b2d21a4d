package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/procfs"
)

// A budget verdict on a report that lost events is never "ok": 250 real
// leaks with 88,659 events lost once passed "budget 245: ok". Exit 98 unless
// the user opts in with --allow-incomplete.
func TestRunLossyBudget(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	tmp := t.TempDir()
	for _, tc := range []struct {
		flags []string
		code  int
	}{
		{nil, 98},
		{[]string{"--allow-incomplete"}, 0},
	} {
		jsonPath := filepath.Join(tmp, fmt.Sprintf("lossy%d.json", tc.code))
		args := append([]string{"run", "--ring-buffer-size", "4096", "--budget", "1000", "--json", jsonPath}, tc.flags...)
		code, out := leaktrace(t, append(args, "--", filepath.Join(dir, "leaky-c"), "balanced")...)
		r := readReport(t, jsonPath)
		if r.Events.Lost == 0 {
			t.Fatalf("a 4 KiB ring buffer lost nothing (%d received): the test proves nothing", r.Events.Received)
		}
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (%d events lost)\n%s", tc.flags, code, tc.code, r.Events.Lost, out)
		}
		if r.Budget == nil || r.Budget.Incomplete != (tc.code == 98) {
			t.Errorf("%v: budget verdict %+v", tc.flags, r.Budget)
		}
		if tc.code == 98 && !strings.Contains(out, "budget: not judged, the report is incomplete") {
			t.Errorf("text report does not say the budget was not judged:\n%s", out)
		}
	}
}

// startPython runs a Python snippet that prints a line when it is ready.
func startPython(t *testing.T, code string) (*exec.Cmd, string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed")
	}
	cmd := exec.Command(py, "-c", code)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("python not ready: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

// attach to a thread id traces its process, and says so (it used to trace
// nothing, "no leaks (0 events)").
func TestAttachThreadID(t *testing.T) {
	requireRoot(t)
	binaries(t)
	prog, tidText := startPython(t, `
import threading, time
ev = threading.Event()
def worker():
    import threading as th
    print(th.get_native_id(), flush=True)
    ev.wait()
threading.Thread(target=worker, daemon=True).start()
time.sleep(0.3)
keep = [open("/dev/null") for _ in range(3)]
time.sleep(60)
`)
	tid, _ := strconv.Atoi(tidText)
	if tid == 0 || tid == prog.Process.Pid {
		t.Fatalf("thread id %q", tidText)
	}
	jsonPath := filepath.Join(t.TempDir(), "attach.json")
	code, out := leaktrace(t, "attach", "--duration", "1500ms", "--min-age", "0s", "--json", jsonPath, strconv.Itoa(tid))
	if code != 0 {
		t.Fatalf("attach to a thread: exit %d\n%s", code, out)
	}
	if want := fmt.Sprintf("%d is a thread of process %d", tid, prog.Process.Pid); !strings.Contains(out, want) {
		t.Errorf("output does not say %q:\n%s", want, out)
	}
	r := readReport(t, jsonPath)
	if r.PID != prog.Process.Pid {
		t.Errorf("report's pid %d, want the process %d", r.PID, prog.Process.Pid)
	}
	if r.Events.Received == 0 && len(r.Preexisting) == 0 {
		t.Errorf("nothing traced: %+v", r.Events)
	}
}

// A kernel thread has no fds to leak: refused, 125, one line.
func TestAttachKernelThread(t *testing.T) {
	requireRoot(t)
	kthread := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procfs.ReadStat(pid); err == nil && st.KernelThread() {
			kthread = pid
			break
		}
	}
	if kthread == 0 {
		t.Fatal("no kernel thread in /proc (a pid namespace?)")
	}
	code, out := leaktrace(t, "attach", "--duration", "1s", strconv.Itoa(kthread))
	if code != 125 || !strings.Contains(out, "kernel thread") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("attach to kernel thread %d: exit %d\n%s", kthread, code, out)
	}
}

// A target that exits and stays an unreaped zombie ends attach with its
// report (it used to wait for --duration or Ctrl-C forever).
func TestAttachZombieEnds(t *testing.T) {
	requireRoot(t)
	binaries(t)
	_, childText := startPython(t, `
import subprocess, time
p = subprocess.Popen(["sleep", "2"])
print(p.pid, flush=True)
time.sleep(120)   # never waits: the child stays a zombie
`)
	child, _ := strconv.Atoi(childText)
	jsonPath := filepath.Join(t.TempDir(), "attach.json")
	start := time.Now()
	code, out := leaktrace(t, "attach", "--duration", "60s", "--interval", "200ms", "--json", jsonPath, strconv.Itoa(child))
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if took > 20*time.Second {
		t.Errorf("attach to a process that became a zombie took %v", took)
	}
	if st, err := procfs.ReadStat(child); err != nil || !st.Gone() {
		t.Errorf("the target is not a zombie (%+v, %v): the test proves nothing", st, err)
	}
	if r := readReport(t, jsonPath); r.PID != child {
		t.Errorf("report pid %d", r.PID)
	}
}

// SIGHUP (the terminal closed) ends attach as Ctrl-C does: with its report.
func TestAttachSIGHUP(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	target := exec.Command("sleep", "60")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { target.Process.Kill(); target.Wait() }()
	jsonPath := filepath.Join(t.TempDir(), "attach.json")
	cmd := exec.Command(filepath.Join(dir, "leaktrace"), "attach", "--json", jsonPath, strconv.Itoa(target.Process.Pid))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // loaded and attached
	cmd.Process.Signal(syscall.SIGHUP)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("attach after SIGHUP: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("attach still running 20s after SIGHUP\n%s", out.String())
	}
	if !strings.Contains(out.String(), "leaktrace attach") {
		t.Errorf("no report after SIGHUP:\n%s", out.String())
	}
	if r := readReport(t, jsonPath); r.PID != target.Process.Pid {
		t.Errorf("report pid %d", r.PID)
	}
}

// The README says root is needed, because capabilities alone are refused:
// a non-root user holding CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and
// CAP_SYS_ADMIN gets exit 125 and "needs root" (the README used to say they
// suffice).
func TestPrivilegeClaim(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv (util-linux) is needed")
	}
	exe := filepath.Join(t.TempDir(), "leaktrace")
	data, err := os.ReadFile(filepath.Join(dir, "leaktrace"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(exe), 0o755)
	caps := "+bpf,+perfmon,+sys_ptrace,+sys_admin"
	out, err := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
		"--inh-caps", caps, "--ambient-caps", caps, exe, "run", "--", "true").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 125 || !strings.Contains(string(out), "needs root") {
		t.Fatalf("as uid 65534 with %s: %v\n%s", caps, err, out)
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	needs := string(readme)[strings.Index(string(readme), "Needs:"):]
	needs = needs[:strings.Index(needs, "\n\n")]
	if strings.Contains(needs, "root (or CAP_") || !strings.Contains(needs, "a non-root user given capabilities is refused") {
		t.Errorf("README's Needs claims what the code refuses:\n%s", needs)
	}
}

// A process the agent's filter selects at its exec (its parent was not
// traced) has its fds labelled by their kinds from /proc, not
// kind="unknown".
func TestAgentExecKinds(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	os.Chmod(tmp, 0o755)
	sleepBin, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleepBin)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(tmp, "ltexeckind")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	base := startAgent(t, "--comm", "ltexeckind", "--interval", "500ms")
	prog := exec.Command("sh", "-c", "exec 3</etc/hostname 4<>/dev/null; exec "+exe+" 30")
	if err := prog.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { prog.Process.Kill(); prog.Wait() }()
	pid := strconv.Itoa(prog.Process.Pid)
	var kinds map[string]float64
	waitFor(t, 15*time.Second, "the exec'd process's handles", func() bool {
		kinds = map[string]float64{}
		for _, k := range []string{"file", "unknown", "pipe", "socket"} {
			if v := series(scrape(t, base), "leaktrace_process_open_handles", map[string]string{"pid": pid, "kind": k}); len(v) == 1 {
				kinds[k] = v[0]
			}
		}
		return kinds["file"]+kinds["unknown"] >= 2
	})
	if kinds["unknown"] != 0 || kinds["file"] < 2 {
		t.Errorf("kinds of pid %s: %v; want fds 3 and 4 (files) known, none unknown", pid, kinds)
	}
}

// openPTY opens a pseudo-terminal pair: what a user's terminal looks like.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 120})
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// On a terminal, attach draws its live view on the alternate screen (frames
// do not pile up in the scrollback), labels its columns, says how many are
// open before --min-age passes, and prints the report on the main screen
// after leaving it. NO_COLOR leaves colour out.
func TestAttachLiveOnATerminal(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	target := exec.Command("sleep", "60")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { target.Process.Kill(); target.Wait() }()
	master, slave := openPTY(t)
	cmd := exec.Command(filepath.Join(dir, "leaktrace"), "attach", "--duration", "2500ms", "--interval", "200ms", strconv.Itoa(target.Process.Pid))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	read := make(chan struct{})
	go func() { out.ReadFrom(master); close(read) }() // EIO once the last writer is gone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("attach: %v\n%q", err, out.String())
	}
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		master.Close()
		<-read
	}
	text := out.String()
	enter, leave := strings.Index(text, "\x1b[?1049h"), strings.LastIndex(text, "\x1b[?1049l")
	if enter < 0 || leave < enter {
		t.Fatalf("no alternate screen (enter %d, leave %d):\n%q", enter, leave, text)
	}
	frames := text[enter:leave]
	if strings.Count(frames, "\x1b[H\x1b[2J") < 3 {
		t.Errorf("fewer than 3 frames in 2.5s at 200ms:\n%q", frames)
	}
	for _, want := range []string{"OPEN", "OLD", "OLD: open over --min-age 10s", "none for longer than --min-age 10s yet"} {
		if !strings.Contains(frames, want) {
			t.Errorf("live view lacks %q:\n%q", want, frames)
		}
	}
	if after := text[leave:]; !strings.Contains(after, "leaktrace attach") {
		t.Errorf("no report on the main screen after the live view:\n%q", after)
	}
	if strings.Contains(text, "\x1b[1;31m") || strings.Contains(text, "\x1b[31m") {
		t.Errorf("colour despite NO_COLOR:\n%q", text)
	}
}
