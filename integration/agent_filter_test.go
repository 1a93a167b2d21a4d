package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/leaktrace/leaktrace/agent"
)

// startLeaker runs `exe slow` (leaky-c: one file leaked every 10 ms for about
// nine seconds) and returns its pid once it printed "ready"; it is killed at
// cleanup.
func startLeaker(t *testing.T, exe string, attr *syscall.SysProcAttr) int {
	t.Helper()
	cmd := exec.Command(exe, "slow")
	cmd.SysProcAttr = attr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("%s: first line %q, %v; want ready", exe, line, err)
	}
	go io.Copy(io.Discard, r)
	return cmd.Process.Pid
}

// leakerSeen waits until the agent reports at least n open handles for pid.
func leakerSeen(t *testing.T, base string, pid, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("pid %d with %d handles in the metrics", pid, n), func() bool {
		return sum(series(scrape(t, base), "leaktrace_process_open_handles", map[string]string{"pid": strconv.Itoa(pid)})) >= float64(n)
	})
}

// notSelected checks that pid, alive and leaking, has no series at all.
func notSelected(t *testing.T, base string, pid int) {
	t.Helper()
	before := procFDCount(t, pid)
	mfs := scrape(t, base)
	time.Sleep(50 * time.Millisecond) // a few leaks' worth
	if after := procFDCount(t, pid); after < 20 || after <= before {
		t.Fatalf("pid %d has %d then %d fds: not leaking while scraped, the check would prove nothing", pid, before, after)
	}
	for name, mf := range mfs {
		if strings.HasPrefix(name, "leaktrace_process_") && len(series(map[string]*dto.MetricFamily{name: mf}, name, map[string]string{"pid": strconv.Itoa(pid)})) > 0 {
			t.Errorf("pid %d, not selected, has %s series", pid, name)
		}
	}
}

// TestAgentFilterPID runs two identical leaking processes and selects one by
// --pid: it is seeded and followed, the other never shows.
func TestAgentFilterPID(t *testing.T) {
	requireRoot(t)
	leaky := filepath.Join(binaries(t), "leaky-c")
	// Both are stopped while the agent starts, so that they still leak after.
	picked, other := startLeaker(t, leaky, nil), startLeaker(t, leaky, nil)
	for _, pid := range []int{picked, other} {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	seeded := procFDCount(t, picked)
	base := startAgent(t, "--pid", strconv.Itoa(picked), "--interval", "500ms")
	for _, pid := range []int{picked, other} {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	leakerSeen(t, base, picked, seeded+100)
	notSelected(t, base, other)
}

// TestAgentFilterExe selects by --exe one of two copies of the same program
// (same comm, different files), both started after the agent.
func TestAgentFilterExe(t *testing.T) {
	requireRoot(t)
	leaky := filepath.Join(binaries(t), "leaky-c")
	data, err := os.ReadFile(leaky)
	if err != nil {
		t.Fatal(err)
	}
	copyExe := filepath.Join(t.TempDir(), "leaky-c")
	if err := os.WriteFile(copyExe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	base := startAgent(t, "--exe", copyExe, "--interval", "500ms")
	picked, other := startLeaker(t, copyExe, nil), startLeaker(t, leaky, nil)
	leakerSeen(t, base, picked, 100)
	notSelected(t, base, other)
}

// cgroup2Mount returns where cgroup v2 is mounted and the cgroup its root is
// (mountinfo's root field), or why there is none.
func cgroup2Mount() (mountPoint, root string, err error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" {
			return f[4], f[3], nil
		}
	}
	return "", "", fmt.Errorf("no cgroup2 mount in /proc/self/mountinfo")
}

// TestAgentFilterCgroup creates a cgroup v2 child, starts a leaking process
// in it (CLONE_INTO_CGROUP) and another outside it, and selects the first by
// --cgroup. It needs cgroup v2 mounted and writable: the only reason it
// skips, and then not under CI=true, where hosts are set up for it.
func TestAgentFilterCgroup(t *testing.T) {
	requireRoot(t)
	mnt, root, err := cgroup2Mount()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI=true and %v: the cgroup filter cannot be tested", err)
		}
		t.Skipf("skipping: %v", err)
	}
	name := fmt.Sprintf("leaktrace-test-%d", os.Getpid())
	dir := filepath.Join(mnt, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI=true and cgroup v2 at %s is not writable: %v", mnt, err)
		}
		t.Skipf("skipping: cgroup v2 at %s is not writable: %v", mnt, err)
	}
	// Registered first, so it runs after the processes in it are killed.
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing the test cgroup: %v", err)
		}
	})
	cgPath := filepath.Join("/", root, name)
	cgFD, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cgFD.Close()

	base := startAgent(t, "--cgroup", cgPath, "--interval", "500ms")
	leaky := filepath.Join(binaries(t), "leaky-c")
	picked := startLeaker(t, leaky, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgFD.Fd())})
	other := startLeaker(t, leaky, nil)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", picked))
	if err != nil {
		t.Fatal(err)
	}
	if got := agent.ParseCgroup(string(b)); got != cgPath {
		t.Fatalf("pid %d is in cgroup %q, want %q (a cgroup namespace rooted elsewhere?)", picked, got, cgPath)
	}
	leakerSeen(t, base, picked, 100)
	if v := series(scrape(t, base), "leaktrace_process_open_handles", map[string]string{"pid": strconv.Itoa(picked), "cgroup": cgPath}); len(v) == 0 {
		t.Errorf("pid %d's series do not carry cgroup=%q", picked, cgPath)
	}
	notSelected(t, base, other)
}

// TestAgentWholeHost runs the agent with no filter: it seeds what runs (this
// test among it) and follows a process started after it. Short: on a small
// host it traces every process.
func TestAgentWholeHost(t *testing.T) {
	requireRoot(t)
	leaky := filepath.Join(binaries(t), "leaky-c")
	base := startAgent(t, "--interval", "1s")
	pid := startLeaker(t, leaky, nil)
	leakerSeen(t, base, pid, 100)
	mfs := scrape(t, base)
	if v := series(mfs, "leaktrace_process_open_handles", map[string]string{"pid": strconv.Itoa(os.Getpid())}); len(v) == 0 {
		t.Errorf("the test process (pid %d), running before the agent, has no series: not seeded", os.Getpid())
	}
	if v := series(mfs, "leaktrace_processes", map[string]string{"state": "tracked"}); len(v) != 1 || v[0] < 3 {
		t.Errorf("tracked processes = %v, want the host's (at least 3)", v)
	}
}

// TestAgentWholeHostDupOntoParked: the whole-host agent holds a fresh open
// back in the kernel to pair it with its close; a dup2 onto that fd must send
// it first, or the open arrives later and replaces the dup'd pipe with the
// file. The agent's pipes for the process must be /proc's.
func TestAgentWholeHostDupOntoParked(t *testing.T) {
	requireRoot(t)
	base := startAgent(t, "--interval", "500ms")
	cmd := exec.Command(filepath.Join(binaries(t), "dupparked"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var fd int
	if _, err := fmt.Fscanf(out, "ready %d\n", &fd); err != nil {
		t.Fatalf("dupparked not ready: %v", err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	procPipes := 0
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if target, err := os.Readlink("/proc/" + pid + "/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "pipe:") {
			procPipes++
		}
	}
	if procPipes < 3 {
		t.Fatalf("/proc/%s/fd has %d pipes, want at least 3 (both ends and fd %d)", pid, procPipes, fd)
	}
	var got []float64
	waitFor(t, 15*time.Second, "the agent's pipes for dupparked equal /proc's", func() bool {
		got = series(scrape(t, base), "leaktrace_process_open_handles", map[string]string{"pid": pid, "kind": "pipe"})
		return len(got) == 1 && int(got[0]) == procPipes
	})
}

// TestAgentSettledBySite: the whole-host agent keeps most short-lived
// handles in the kernel, yet still counts them by call site: the threaded
// program's open_short, socket_short and pipe_short sites show their
// counts, which come close to what it made (most of 4 threads × 3 per
// round, and a pipe's two ends), though the program has exited by the time
// the agent samples.
func TestAgentSettledBySite(t *testing.T) {
	requireRoot(t)
	base := startAgent(t, "--interval", "500ms")
	const rounds = 3000
	out, err := exec.Command(filepath.Join(binaries(t), "pairing"), strconv.Itoa(rounds)).CombinedOutput()
	if err != nil {
		t.Fatalf("pairing: %v\n%s", err, out)
	}
	bySite := func() map[string]float64 {
		got := map[string]float64{}
		mfs := scrape(t, base)
		if mf := mfs["leaktrace_site_settled_in_kernel_total"]; mf != nil {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "function" {
						got[l.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
		return got
	}
	// Per thread and round: two files and a socket, and a pipe's two ends
	// (each settled by its own close).
	made := float64(rounds * 4 * 3)
	madePipes := float64(rounds * 4 * 2)
	var got map[string]float64
	waitFor(t, 10*time.Second, "settled counts of open_short, socket_short and pipe_short", func() bool {
		got = bySite()
		return got["open_short"] > 0 && got["socket_short"] > 0 && got["open_short"]+got["socket_short"] > made/2 &&
			got["pipe_short"] > madePipes/2
	})
	t.Logf("settled in the kernel by site: %v (the program made %v short-lived files and sockets, %v pipe ends)", got, made, madePipes)
	if got["open_short"]+got["socket_short"] > made {
		t.Errorf("more settled (%v) than the program made (%v)", got["open_short"]+got["socket_short"], made)
	}
	if got["pipe_short"] > madePipes {
		t.Errorf("more pipe ends settled (%v) than the program made (%v)", got["pipe_short"], madePipes)
	}
}
