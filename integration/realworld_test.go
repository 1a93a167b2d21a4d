package integration

// The real-software suite: Debian's own redis, nginx, PostgreSQL and CPython
// test suite, traced as a user would trace them, under a bounded load, with
// connections held open on purpose. Each report is compared with the
// kernel's truth at the end (/proc/PID/fd of every live traced process; for
// `run`, the fds each Python process listed just before it finalized): no
// false leak, no missed leak, no event lost, at least as many events as the
// server itself counted connections, and the held connections named by the
// accept path. scripts/ci/realworld.sh installs the packages in CI. Servers
// listen on 127.0.0.1 only, are stopped by pid and their temp dirs removed,
// pass or fail.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

// realMinAge is the --min-age of the attach scenarios: the load is over and
// the held connections are older than it before the report is taken.
const realMinAge = time.Second

// requireTool returns the path of a program the suite needs: in CI a missing
// one fails the test (scripts/ci/realworld.sh installs it), elsewhere it skips.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin") // Debian keeps the server's tools there
	for _, dir := range append([]string{"/usr/sbin"}, dirs...) {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: scripts/ci/realworld.sh installs it", name)
	}
	t.Skipf("skipping: %s not installed (run scripts/ci/realworld.sh)", name)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// realTempDir makes a directory removed when the test ends, pass or fail.
func realTempDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "leaktrace-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts cmd and stops it by its pid when the test ends.
func startServer(t *testing.T, cmd *exec.Cmd, stop syscall.Signal) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(pid, stop)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-done
		}
	})
	return pid
}

// runLoad runs a load generator to its end, bounded by a timeout.
func runLoad(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
		}
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish in %v:\n%s", name, timeout, out.String())
	}
	return out.String()
}

// holdTCP opens n connections to port and keeps them until the test ends;
// hello, when set, is sent on each and one line of answer read, so that the
// server has surely accepted it.
func holdTCP(t *testing.T, port, n int, hello string) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if hello == "" {
			continue
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, hello); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatalf("held connection got no answer: %v", err)
		}
		c.SetDeadline(time.Time{})
	}
}

// stop ends the attach with SIGINT (as Ctrl-C) and returns its output.
func (a *attachRun) stop(t *testing.T) string {
	t.Helper()
	a.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(60 * time.Second):
		a.cmd.Process.Kill()
		t.Fatalf("attach did not stop on SIGINT:\n%s", a.out.String())
	}
	return a.wait(t)
}

// descendants returns root and every process below it, by /proc's ppid.
func descendants(root int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// comm may hold spaces: the fields after it follow the last ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		for pid, pp := range parent {
			if pp == out[i] {
				out = append(out, pid)
			}
		}
	}
	return out
}

// procTruth is /proc/PID/fd above 2 of a process tree, read at one moment.
type procTruth map[int]map[int]string

func procSnapshot(root int) procTruth {
	tr := procTruth{}
	for _, pid := range descendants(root) {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue
		}
		fds := map[int]string{}
		for _, e := range ents {
			fd, err := strconv.Atoi(e.Name())
			if err != nil || fd <= 2 {
				continue
			}
			fds[fd], _ = os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		}
		tr[pid] = fds
	}
	return tr
}

// checkAttachTruth compares an attach report with /proc read just before it
// was taken, after a quiet period longer than --min-age: every fd leak it
// lists (counted, or listed apart as an inherited copy) is open in a live
// process, and every fd a live traced process has open but those open
// before the attach is listed. Nothing an exited process held is listed.
func checkAttachTruth(t *testing.T, r *report.Report, tr procTruth) {
	t.Helper()
	if !r.Complete || r.Events.Lost != 0 {
		t.Errorf("report incomplete: %d events lost, notes %v", r.Events.Lost, r.Notes)
	}
	pre := map[int]map[int]bool{}
	for _, l := range r.Preexisting {
		if pre[l.PID] == nil {
			pre[l.PID] = map[int]bool{}
		}
		pre[l.PID][l.FD] = true
	}
	listed := map[int]map[int]report.Leak{}
	for _, l := range r.Leaks {
		if _, live := tr[l.PID]; !live {
			t.Errorf("false leak: pid %d (exited) fd %d %s %s", l.PID, l.FD, l.Kind, l.Target)
			continue
		}
		if l.FD < 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", l.PID, l.TID)); l.Kind == "thread" && err != nil {
				t.Errorf("false leak: thread %d of pid %d is not running", l.TID, l.PID)
			}
			continue
		}
		if listed[l.PID] == nil {
			listed[l.PID] = map[int]report.Leak{}
		}
		listed[l.PID][l.FD] = l
		if _, open := tr[l.PID][l.FD]; !open {
			t.Errorf("false leak: pid %d fd %d %s %s is not open in /proc", l.PID, l.FD, l.Kind, l.Target)
		}
	}
	for _, p := range r.Processes {
		fds, live := tr[p.PID]
		if p.Exited || !live {
			continue
		}
		for fd, link := range fds {
			if _, ok := listed[p.PID][fd]; !ok && !pre[p.PID][fd] {
				t.Errorf("missed leak: pid %d (%s) fd %d %s is open in /proc, not reported", p.PID, p.Comm, fd, link)
			}
		}
	}
}

// connectionLeaks returns the counted socket leaks that are connections to
// port (not the listening socket), and checks each names an accept function.
func connectionLeaks(t *testing.T, r *report.Report, port int, accept ...string) []report.Leak {
	t.Helper()
	var out []report.Leak
	local := fmt.Sprintf("127.0.0.1:%d ", port) // "tcp LOCAL -> PEER"
	for _, l := range r.Leaks {
		if !l.Counted || l.Kind != "socket" || !strings.Contains(l.Target, local+"->") {
			continue
		}
		out = append(out, l)
		found := false
		for _, fn := range accept {
			found = found || report.HasFunction(l.Stack, fn)
		}
		if !found {
			t.Errorf("held connection pid %d fd %d: stack names none of %v: %+v", l.PID, l.FD, accept, l.Stack)
		}
	}
	return out
}

// checkEvents: the session saw an accept and a close per connection the
// server counted, but the held ones, still open (a handle settled in the
// kernel is two events).
func checkEvents(t *testing.T, r *report.Report, accepted, held int) {
	t.Helper()
	seen := r.Events.Received + 2*r.Events.PairedInKernel
	if accepted <= held || seen < uint64(2*accepted-held) {
		t.Errorf("%d events seen (%d received, %d paired in the kernel) for %d connections the server accepted", seen,
			r.Events.Received, r.Events.PairedInKernel, accepted)
	}
	t.Logf("server accepted %d connections; %d events received, %d paired in the kernel", accepted, r.Events.Received, r.Events.PairedInKernel)
}

func TestRealRedis(t *testing.T) {
	requireRoot(t)
	server := requireTool(t, "redis-server")
	bench := requireTool(t, "redis-benchmark")
	cli := requireTool(t, "redis-cli")
	dir := realTempDir(t, "redis")
	port := freePort(t)
	ps := strconv.Itoa(port)
	pid := startServer(t, exec.Command(server, "--port", ps, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no", "--maxclients", "200"), syscall.SIGTERM)
	stat := func(key string) int {
		out, err := exec.Command(cli, "-h", "127.0.0.1", "-p", ps, "INFO", "stats").Output()
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		return -1
	}
	waitFor(t, 20*time.Second, "redis to answer", func() bool { return stat("total_connections_received") > 0 })
	before := stat("total_connections_received")

	jsonPath := filepath.Join(t.TempDir(), "redis.json")
	att := startAttach(t, pid, "--min-age", realMinAge.String(), "--json", jsonPath)
	// -k 0: a new connection per request, 1,000 of them.
	runLoad(t, 2*time.Minute, bench, "-h", "127.0.0.1", "-p", ps, "-n", "1000", "-c", "10", "-k", "0", "-t", "ping", "-q")
	const held = 3
	holdTCP(t, port, held, "PING\r\n")
	time.Sleep(realMinAge + 500*time.Millisecond)
	accepted := stat("total_connections_received") - before
	tr := procSnapshot(pid)
	att.stop(t)
	r := readReport(t, jsonPath)

	checkAttachTruth(t, r, tr)
	checkEvents(t, r, accepted, held)
	if conns := connectionLeaks(t, r, port, "anetTcpAccept", "acceptTcpHandler"); len(conns) != held {
		t.Errorf("%d held connections reported, want %d", len(conns), held)
	}
}

func TestRealNginx(t *testing.T) {
	requireRoot(t)
	nginx := requireTool(t, "nginx")
	ab := requireTool(t, "ab")
	dir := realTempDir(t, "nginx")
	port := freePort(t)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	keepalive_timeout 120s;
	server {
		listen 127.0.0.1:%[2]d;
		root %[1]s;
		location = /status { stub_status; }
	}
}
`, dir, port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	master := startServer(t, exec.Command(nginx, "-p", dir, "-c", confPath), syscall.SIGQUIT)
	status := func() map[string]int {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
		if err != nil {
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /status HTTP/1.0\r\nHost: x\r\n\r\n")
		body, _ := io.ReadAll(c)
		// "server accepts handled requests\n 12 12 12"
		s := string(body)
		i := strings.Index(s, "server accepts handled requests")
		if i < 0 {
			return nil
		}
		f := strings.Fields(s[i+len("server accepts handled requests"):])
		if len(f) < 3 {
			return nil
		}
		acc, _ := strconv.Atoi(f[0])
		return map[string]int{"accepts": acc}
	}
	waitFor(t, 20*time.Second, "nginx to answer", func() bool { return status() != nil })
	workers := func() []int {
		var out []int
		for _, p := range descendants(master)[1:] {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); strings.Contains(string(comm), "worker process") {
				out = append(out, p)
			}
		}
		return out
	}

	// scenario attaches to root, serves ab's 1,000 connections, holds three
	// more open and waits out --min-age; the report must match /proc.
	scenario := func(t *testing.T, root int, reload bool) {
		old := workers()
		jsonPath := filepath.Join(t.TempDir(), "nginx.json")
		att := startAttach(t, root, "--min-age", realMinAge.String(), "--json", jsonPath)
		if reload {
			// The master forks a new worker (traced) and the old one
			// exits; the stub_status counters live on in shared memory.
			syscall.Kill(master, syscall.SIGHUP)
			waitFor(t, 30*time.Second, "the old worker to exit and a new one to start", func() bool {
				w := workers()
				return len(w) == 1 && !slices.Contains(old, w[0])
			})
		}
		before := status()["accepts"]
		runLoad(t, 2*time.Minute, ab, "-q", "-n", "1000", "-c", "10", fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
		const held = 3
		holdTCP(t, port, held, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(realMinAge + 500*time.Millisecond)
		accepted := status()["accepts"] - before
		tr := procSnapshot(root)
		att.stop(t)
		r := readReport(t, jsonPath)

		checkAttachTruth(t, r, tr)
		checkEvents(t, r, accepted, held)
		conns := connectionLeaks(t, r, port, "ngx_event_accept")
		if len(conns) != held {
			t.Errorf("%d held connections reported, want %d", len(conns), held)
		}
		for _, l := range conns {
			if l.PID == master {
				t.Errorf("held connection reported in the master: %+v", l)
			}
		}
	}
	t.Run("worker", func(t *testing.T) {
		w := workers()
		if len(w) != 1 {
			t.Fatalf("nginx workers %v, want one", w)
		}
		scenario(t, w[0], false)
	})
	t.Run("master across a reload", func(t *testing.T) { scenario(t, master, true) })
}

// postgres runs a throwaway PostgreSQL cluster as the postgres user: initdb
// into a temp dir, the postmaster on a free port of 127.0.0.1, its log
// (connections logged) in the dir.
type postgres struct {
	bin, dir, log string
	port, pid     int
}

func startPostgres(t *testing.T) *postgres {
	t.Helper()
	initdb, err := filepath.EvalSymlinks(requireTool(t, "initdb")) // its directory has postgres and pg_isready
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no postgres user: scripts/ci/realworld.sh installs postgresql")
		}
		t.Skip("skipping: no postgres user (install postgresql)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	pg := &postgres{bin: filepath.Dir(initdb), dir: realTempDir(t, "pg"), port: freePort(t)}
	if err := os.Chown(pg.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(pg.dir, "data")
	env := []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "HOME=" + pg.dir}
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.SysProcAttr, cmd.Env, cmd.Dir = cred, env, pg.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pg.log = filepath.Join(pg.dir, "postgres.log")
	logf, err := os.Create(pg.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd = exec.Command(filepath.Join(pg.bin, "postgres"), "-D", data, "-p", strconv.Itoa(pg.port), "-k", pg.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "autovacuum=off", "-c", "log_connections=on",
		"-c", "max_connections=40", "-c", "shared_buffers=16MB")
	cmd.SysProcAttr, cmd.Env, cmd.Dir = cred, env, pg.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT: immediate shutdown, the postmaster ends its children.
	pg.pid = startServer(t, cmd, syscall.SIGQUIT)
	waitFor(t, 60*time.Second, "PostgreSQL to accept connections", func() bool {
		return exec.Command(filepath.Join(pg.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.port)).Run() == nil
	})
	return pg
}

// received counts the connections the server logged as received.
func (pg *postgres) received(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(pg.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "connection received:")
}

func (pg *postgres) args(extra ...string) []string {
	return append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(pg.port), "-U", "postgres"}, extra...)
}

// TestRealPostgresForkingServer: attached to the postmaster under
// `pgbench -C` (a backend forked per connection, each exiting), the report
// lists no leak: what the backends held at exit is summed apart. A second
// attach with two psql sessions held open lists exactly what their backends
// hold, the connection handed over by the postmaster with its accept stack.
func TestRealPostgresForkingServer(t *testing.T) {
	requireRoot(t)
	pgbench := requireTool(t, "pgbench")
	psql := requireTool(t, "psql")
	pg := startPostgres(t)
	runLoad(t, 2*time.Minute, pgbench, pg.args("-i", "-q", "-s", "1", "-I", "dtgp", "postgres")...)

	t.Run("pgbench -C", func(t *testing.T) {
		before := pg.received(t)
		jsonPath := filepath.Join(t.TempDir(), "pg.json")
		att := startAttach(t, pg.pid, "--min-age", realMinAge.String(), "--json", jsonPath)
		runLoad(t, 2*time.Minute, pgbench, pg.args("-n", "-C", "-S", "-c", "4", "-j", "1", "-t", "15", "postgres")...)
		time.Sleep(realMinAge + 500*time.Millisecond)
		accepted := pg.received(t) - before
		tr := procSnapshot(pg.pid)
		att.stop(t)
		r := readReport(t, jsonPath)

		checkAttachTruth(t, r, tr)
		checkEvents(t, r, accepted, 0)
		for _, l := range r.Leaks {
			if l.Counted {
				t.Errorf("a server that leaks nothing: leak %+v", l)
			}
		}
		if h := r.HeldAtExit; h == nil || h.Processes < accepted || h.Kinds["socket"] < accepted {
			t.Errorf("held at exit %+v: want the %d backends and their connections", h, accepted)
		}
	})

	t.Run("held sessions", func(t *testing.T) {
		before := pg.received(t)
		jsonPath := filepath.Join(t.TempDir(), "pg.json")
		att := startAttach(t, pg.pid, "--min-age", realMinAge.String(), "--json", jsonPath)
		const held = 2
		for range held {
			// psql connects at start and then waits on its stdin.
			c := exec.Command(psql, pg.args("-X", "-q", "-d", "postgres")...)
			in, err := c.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			startServer(t, c, syscall.SIGKILL)
			t.Cleanup(func() { in.Close() })
		}
		waitFor(t, 30*time.Second, "the held sessions to be authorized", func() bool {
			b, _ := os.ReadFile(pg.log)
			return strings.Count(string(b), "application_name=psql") >= held
		})
		runLoad(t, 2*time.Minute, pgbench, pg.args("-n", "-C", "-S", "-c", "2", "-j", "1", "-t", "10", "postgres")...)
		time.Sleep(realMinAge + 500*time.Millisecond)
		accepted := pg.received(t) - before
		tr := procSnapshot(pg.pid)
		att.stop(t)
		r := readReport(t, jsonPath)

		checkAttachTruth(t, r, tr)
		checkEvents(t, r, accepted, held)
		conns := connectionLeaks(t, r, pg.port, "StreamConnection")
		if len(conns) != held {
			t.Errorf("%d held sessions' connections reported, want %d", len(conns), held)
		}
		for _, l := range conns {
			if l.PID == pg.pid || !l.HandedOver || l.Inherited {
				t.Errorf("held connection %+v: want a backend's own (handed over by the postmaster)", l)
			}
		}
	})
}

// sitecustomize makes every Python process that imports site write the fds
// it has open just before it finalizes: its handler is registered first, so
// atexit runs it last. The record is "fd fd fd…" in DIR/PID.
const sitecustomize = `import atexit, os

def _leaktrace_truth():
    d = os.environ.get("LEAKTRACE_RECORD_DIR")
    if not d:
        return
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            os.readlink("/proc/self/fd/%d" % fd)  # listdir's own fd is closed now
        except OSError:
            continue
        if fd > 2:
            fds.append(fd)
    out = os.open(os.path.join(d, str(os.getpid())), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(out, " ".join(map(str, sorted(fds))).encode())
    os.close(out)

atexit.register(_leaktrace_truth)
`

// leakyStdlib keeps what the standard library gave it: a file, a socket
// pair, a subprocess's pipe, a temporary file, a database connection and an
// epoll selector.
const leakyStdlib = `import selectors, socket, sqlite3, subprocess, sys, tempfile
kept = [open(sys.argv[0]), *socket.socketpair(), subprocess.Popen(["true"], stdout=subprocess.PIPE).stdout,
        tempfile.TemporaryFile(), sqlite3.connect(":memory:"), selectors.DefaultSelector()]
print("leaky: kept", len(kept))
`

// TestRealCPythonTests runs a few files of CPython's own test suite with
// -j0 (a worker process per file), then a program that leaks through the
// standard library, under one `run`: each Python process's leaks are exactly
// the fds it still had open when it began to finalize.
func TestRealCPythonTests(t *testing.T) {
	requireRoot(t)
	py := requireTool(t, "python3.11")
	if _, err := os.Stat("/usr/lib/python3.11/test/regrtest.py"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CPython's test package missing: scripts/ci/realworld.sh installs libpython3.11-testsuite")
		}
		t.Skip("skipping: libpython3.11-testsuite not installed")
	}
	site := t.TempDir()
	records := realTempDir(t, "pyrecords")
	if err := os.WriteFile(filepath.Join(site, "sitecustomize.py"), []byte(sitecustomize), 0o644); err != nil {
		t.Fatal(err)
	}
	leaky := filepath.Join(site, "leaky_stdlib.py")
	if err := os.WriteFile(leaky, []byte(leakyStdlib), 0o644); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(t.TempDir(), "cpython.json")
	script := fmt.Sprintf("%[1]s -m test -j0 test_fileio test_epoll test_select test_file test_fileinput && %[1]s %[2]s", py, leaky)
	cmd := exec.Command(filepath.Join(binaries(t), "leaktrace"), "run", "--json", jsonPath, "--", "/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+site, "LEAKTRACE_RECORD_DIR="+records, "PYTHONDONTWRITEBYTECODE=1")
	cmd.Dir = records
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("leaktrace run: %v\n%s", err, out)
	}
	r := readReport(t, jsonPath)
	if !r.Complete || r.Events.Lost != 0 {
		t.Errorf("report incomplete: %d events lost, notes %v", r.Events.Lost, r.Notes)
	}
	if !strings.Contains(string(out), "Result: SUCCESS") {
		t.Errorf("the test suite did not pass under leaktrace:\n%s", out)
	}
	leaked := map[int][]int{}
	for _, l := range r.Leaks {
		if l.FD > 2 && !l.Internal {
			leaked[l.PID] = append(leaked[l.PID], l.FD)
		}
	}
	ents, err := os.ReadDir(records)
	if err != nil {
		t.Fatal(err)
	}
	traced := map[int]bool{}
	for _, p := range r.Processes {
		traced[p.PID] = true
	}
	checked, leaking := 0, 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !traced[pid] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(records, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for _, f := range strings.Fields(string(b)) {
			fd, _ := strconv.Atoi(f)
			want = append(want, fd)
		}
		got := leaked[pid]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("pid %d: leaked fds %v, the process had open as it finalized %v", pid, got, want)
		}
		t.Logf("pid %d: leaked fds %v = open as it finalized", pid, got)
		checked++
		if len(want) > 0 {
			leaking++
		}
	}
	// The runner, one worker per test file and the leaky program (its 6
	// fds: sqlite's ":memory:" connection holds none).
	if checked < 7 || leaking < 1 {
		t.Errorf("%d traced Python processes left a record, %d of them leaking; want >= 7 and the leaky program", checked, leaking)
	}
	if !strings.Contains(string(out), "leaky: kept 7") {
		t.Errorf("the leaky program did not run:\n%s", out)
	}
	t.Logf("%d Python processes compared, %d traced", checked, len(r.Processes))
}
