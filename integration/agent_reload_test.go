package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/alert"
)

// fdUsageLevel returns the level of the LeaktraceFDUsageHigh alert firing for
// pid at /debug/alerts, or "" when none is.
func fdUsageLevel(t *testing.T, base string, pid int) string {
	t.Helper()
	resp, err := http.Get(base + "/debug/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var firing []alert.Alert
	if err := json.NewDecoder(resp.Body).Decode(&firing); err != nil {
		t.Fatalf("/debug/alerts: %v", err)
	}
	for _, a := range firing {
		if a.Name == "LeaktraceFDUsageHigh" && a.Labels["pid"] == strconv.Itoa(pid) {
			return a.Level
		}
	}
	return ""
}

// inNanosleep says whether pid is blocked in nanosleep or clock_nanosleep
// as /proc/PID/syscall reports it.
func inNanosleep(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/syscall")
	if err != nil {
		return false
	}
	nr, _, _ := strings.Cut(string(b), " ")
	return nr == strconv.Itoa(unix.SYS_NANOSLEEP) || nr == strconv.Itoa(unix.SYS_CLOCK_NANOSLEEP)
}

// TestAgentReload: SIGHUP applies a lowered fd-usage threshold from the config
// file, and refuses bad edits, keeping the configuration in use.
func TestAgentReload(t *testing.T) {
	requireRoot(t)
	// A process holding 33 (0-2 and 30 more) of its 100 fds: 33 % usage.
	var held []*os.File
	for range 30 {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		held = append(held, f)
	}
	holder := exec.Command("sleep", "120")
	holder.ExtraFiles = held
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		holder.Process.Kill()
		holder.Wait()
	}()
	pid := holder.Process.Pid
	// Until sleep is in its nanosleep, the child may still hold the test's
	// close-on-exec fds or the loader's: the count would not be the one the
	// agent sees a moment later.
	waitFor(t, 10*time.Second, "the holder asleep", func() bool { return inNanosleep(pid) })
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 100, Max: 4096}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	// Inherited fds (the test's parent may leak some) add to the 33.
	n := procFDCount(t, pid)
	if n < 33 || n >= 50 {
		t.Fatalf("holder has %d fds, want 33 to 49: between the thresholds below", n)
	}

	cfg := filepath.Join(t.TempDir(), "agent.yml")
	write := func(yml string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const at50 = "thresholds:\n  fd_usage_warn_percent: 50\n  fd_usage_error_percent: 80\n  fd_usage_critical_percent: 90\n"
	const at20 = "thresholds:\n  fd_usage_warn_percent: 20\n  fd_usage_error_percent: 80\n  fd_usage_critical_percent: 90\n"
	write(at50)
	const interval = 300 * time.Millisecond
	p := launchAgent(t, "--config.file", cfg, "--pid", strconv.Itoa(pid), "--interval", interval.String())
	base := "http://" + p.addr
	waitReady(t, http.DefaultClient, base, nil)
	waitFor(t, 10*time.Second, "the holder's usage in the metrics", func() bool {
		v := series(scrape(t, base), "leaktrace_process_fd_usage_ratio", map[string]string{"pid": strconv.Itoa(pid)})
		return len(v) == 1 && v[0] == float64(n)/100
	})
	time.Sleep(3 * interval) // evaluations at 50 %
	if l := fdUsageLevel(t, base, pid); l != "" {
		t.Fatalf("at %d %% usage with warn at 50 %%, an fd usage alert is firing (%s)", n, l)
	}

	hup := func() {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	logged := func(msg string) int { return strings.Count(p.logText(), `"msg":"`+msg) }

	write(at20)
	hup()
	waitFor(t, 10*time.Second, "a warning at the reloaded 20 % threshold", func() bool {
		return fdUsageLevel(t, base, pid) == alert.LevelWarning
	})
	if n := logged("configuration reloaded"); n != 1 {
		t.Errorf("%d \"configuration reloaded\" log lines, want 1", n)
	}

	// Each bad edit would raise the threshold back to 50 % were it applied.
	for i, bad := range []string{
		at50 + "  fd_usage_wran_percent: 50\n",                                                      // unknown field
		"thresholds:\n  fd_usage_warn_percent: 50\n  fd_usage_error_percent: 40\n",                  // warn > error
		"thresholds:\n  fd_usage_warn_percent: 50\n  fd_usage_error_percent: 80\n  growth_min: [\n", // not YAML
	} {
		write(bad)
		hup()
		waitFor(t, 10*time.Second, "the bad edit refused", func() bool {
			return logged("reload failed") == i+1
		})
		time.Sleep(3 * interval) // evaluations after the refusal
		if l := fdUsageLevel(t, base, pid); l != alert.LevelWarning {
			t.Fatalf("after bad edit %d, the fd usage alert is %q, want still warning at 20 %%", i, l)
		}
	}

	// A good edit still applies after the refusals: the alert resolves.
	write(at50)
	hup()
	waitFor(t, 10*time.Second, "the alert resolved at 50 % again", func() bool {
		return fdUsageLevel(t, base, pid) == ""
	})
	if n := logged("configuration reloaded"); n != 2 {
		t.Errorf("%d \"configuration reloaded\" log lines, want 2", n)
	}
}
