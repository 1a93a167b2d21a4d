package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

var (
	forkserverOnce sync.Once
	forkserverErr  error
)

// forkserver builds testdata/forkserver next to the other test programs.
func forkserver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binaries(t), "forkserver")
	forkserverOnce.Do(func() {
		cmd := exec.Command("gcc", "-O1", "-g", "-Wall", "-fno-omit-frame-pointer", "-o", bin, "testdata/forkserver/forkserver.c", "-lpthread")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			forkserverErr = fmt.Errorf("building forkserver: %v\n%s", err, out)
		}
	})
	if forkserverErr != nil {
		t.Fatal(forkserverErr)
	}
	return bin
}

// procFDs lists /proc/PID/fd above 2 with their link targets.
func procFDs(t *testing.T, pid int) map[int]string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/fd: %v", pid, err)
	}
	out := map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		out[fd] = link
	}
	return out
}

// TestAttachForkingServer attaches the real binary to a forking server: 20
// workers exit holding a connection, an epoll fd, a file and a thread each,
// which the kernel released: summed as held at exit, never counted. The two
// workers that stay hold the connections the server handed over: exactly
// those are the leaks (what /proc says they hold), with the accept stack.
func TestAttachForkingServer(t *testing.T) {
	requireRoot(t)
	const workers, held = 20, 2
	srv := exec.Command(forkserver(t), strconv.Itoa(workers), strconv.Itoa(held))
	stdin, err := srv.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var heldPIDs []int
	defer func() {
		for _, pid := range heldPIDs {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		srv.Process.Kill()
		srv.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("forkserver not ready: %q", lines.Text())
	}

	jsonPath := filepath.Join(t.TempDir(), "attach.json")
	att := startAttach(t, srv.Process.Pid, "--duration", "3s", "--min-age", "1s", "--json", jsonPath)
	fmt.Fprintln(stdin, "go")
	conns := map[int]int{} // held worker -> its connection fd
	for lines.Scan() && lines.Text() != "done" {
		var pid, fd int
		if _, err := fmt.Sscanf(lines.Text(), "held %d %d", &pid, &fd); err != nil {
			t.Fatalf("forkserver said %q", lines.Text())
		}
		heldPIDs = append(heldPIDs, pid)
		conns[pid] = fd
	}
	out := att.wait(t)
	r := readReport(t, jsonPath)
	if !r.Complete || r.Events.Lost != 0 {
		t.Errorf("report incomplete: lost %d, notes %v", r.Events.Lost, r.Notes)
	}

	// The kernel's truth at the end: each held worker holds its connection
	// and nothing else above 2; the server holds nothing above 2 — but what
	// the server had before the attach (fds this test inherited without
	// close-on-exec), which its workers inherit too.
	before := map[int]bool{}
	for _, p := range r.Preexisting {
		before[p.FD] = true
	}
	truth := map[int]map[int]string{srv.Process.Pid: procFDs(t, srv.Process.Pid)}
	for pid := range conns {
		truth[pid] = procFDs(t, pid)
	}
	for _, fds := range truth {
		for fd := range fds {
			if before[fd] {
				delete(fds, fd)
			}
		}
	}
	for pid, fd := range conns {
		if len(truth[pid]) != 1 || !strings.HasPrefix(truth[pid][fd], "socket:") {
			t.Fatalf("worker %d holds %v, want only its connection fd %d", pid, truth[pid], fd)
		}
	}
	counted := map[int]map[int]bool{}
	for _, l := range r.Leaks {
		if !l.Counted {
			continue
		}
		if counted[l.PID] == nil {
			counted[l.PID] = map[int]bool{}
		}
		counted[l.PID][l.FD] = true
		if _, live := truth[l.PID]; !live {
			t.Errorf("leak of a process that exited (pid %d fd %d %s): held at exit is no leak", l.PID, l.FD, l.Kind)
			continue
		}
		if _, open := truth[l.PID][l.FD]; !open {
			t.Errorf("leak pid %d fd %d is not open in /proc", l.PID, l.FD)
		}
		if !l.HandedOver || l.Kind != "socket" || !report.HasFunction(l.Stack, "accept_connection") {
			t.Errorf("leak %+v: want a handed-over socket from accept_connection", l)
		}
	}
	for pid, fds := range truth {
		for fd := range fds {
			if !counted[pid][fd] {
				t.Errorf("pid %d fd %d (%s) is open in /proc but not reported", pid, fd, fds[fd])
			}
		}
	}

	h := r.HeldAtExit
	if h == nil || h.Processes != workers || h.Handles != 4*workers || h.Inherited != workers ||
		h.Kinds["socket"] != workers || h.Kinds["epoll"] != workers || h.Kinds["file"] != workers || h.Kinds["thread"] != workers {
		t.Errorf("held at exit = %+v, want %d workers × socket, epoll, file, thread (%d inherited)", h, workers, workers)
	}
	if h != nil {
		found := false
		for _, s := range h.Sites {
			found = found || s.Headline.Function == "serve"
		}
		if !found {
			t.Errorf("no held-at-exit site headed by serve: %+v", h.Sites)
		}
	}
	for _, want := range []string{"held at exit (not counted", "HELD AT EXIT"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
}

// attachRun is a `leaktrace attach` under way.
type attachRun struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAttach runs `leaktrace -v attach ARGS PID` and returns once it traces
// pid (its "tracing" log line): from then on nothing pid does is missed.
func startAttach(t *testing.T, pid int, args ...string) *attachRun {
	t.Helper()
	argv := append([]string{"-v", "attach"}, args...)
	argv = append(argv, strconv.Itoa(pid))
	a := &attachRun{cmd: exec.Command(filepath.Join(binaries(t), "leaktrace"), argv...), out: &lockedBuffer{}, done: make(chan error, 1)}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.out.String(), "msg=tracing") {
		select {
		case err := <-a.done:
			t.Fatalf("attach ended before tracing: %v\n%s", err, a.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.cmd.Process.Kill()
			t.Fatalf("attach not tracing after 30s:\n%s", a.out.String())
		}
	}
	return a
}

// wait waits for the attach to end (its --duration, or SIGINT now when stop)
// and returns its output.
func (a *attachRun) wait(t *testing.T) string {
	t.Helper()
	if err := <-a.done; err != nil {
		t.Fatalf("attach: %v\n%s", err, a.out.String())
	}
	t.Logf("attach output:\n%s", a.out.String())
	return a.out.String()
}

// TestAttachShortIsNotClean: an attach shorter than the default --min-age
// (10 s) on a program leaking a file every 10 ms judges nothing, and says how
// much it did not judge.
func TestAttachShortIsNotClean(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	prog, _ := startSlowLeaker(t, dir)
	jsonPath := filepath.Join(t.TempDir(), "attach.json")
	out, err := exec.Command(filepath.Join(dir, "leaktrace"), "attach", "--duration", "1500ms", "--json", jsonPath,
		strconv.Itoa(prog.Process.Pid)).CombinedOutput()
	if err != nil {
		t.Fatalf("attach: %v\n%s", err, out)
	}
	r := readReport(t, jsonPath)
	counted := 0
	for _, l := range r.Leaks {
		if l.Counted {
			counted++
		}
	}
	// 1.5 s of one leak per 10 ms is 150; a loaded machine slows the loop.
	const atLeast = 20
	y := r.YoungerThanMinAge
	if counted != 0 || y == nil || y.Handles < atLeast || y.Kinds["file"] != y.Handles || y.MinAgeSeconds != 10 {
		t.Errorf("counted %d, not judged %+v; want 0 and >= %d files under a 10s min-age", counted, y, atLeast)
	}
	// The leaks the program made are all still open: /proc agrees.
	if open := len(procFDs(t, prog.Process.Pid)); y != nil && open < y.Handles {
		t.Errorf("%d not judged, but /proc lists only %d fds above 2", y.Handles, open)
	}
	if !strings.Contains(string(out), "not judged") {
		t.Errorf("text report does not say what was not judged:\n%s", out)
	}
}
