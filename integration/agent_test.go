package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/alert"
	"github.com/leaktrace/leaktrace/report"
)

// webhookLog collects what the agent POSTs to a test webhook (Alertmanager's
// webhook message), as alerts.
type webhookLog struct {
	mu     sync.Mutex
	alerts []alert.Alert
	raw    []alert.WebhookAlert
}

func (w *webhookLog) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var p alert.WebhookPayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil || p.Version != "4" {
		http.Error(rw, fmt.Sprintf("not an Alertmanager v4 message: %v", err), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	for _, a := range p.Alerts {
		w.alerts = append(w.alerts, alert.Alert{Name: a.Labels["alertname"], Level: a.Labels["severity"], Labels: a.Labels,
			Annotations: a.Annotations, StartsAt: a.StartsAt, EndsAt: a.EndsAt, Status: a.Status})
	}
	w.raw = append(w.raw, p.Alerts...)
	w.mu.Unlock()
}

// unresolved lists the alerts of pid, by fingerprint (labels, severity
// included, as Alertmanager keys them), whose last message was "firing".
func (w *webhookLog) unresolved(pid string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := map[string]alert.WebhookAlert{}
	for _, a := range w.raw {
		if a.Labels["pid"] == pid {
			last[a.Fingerprint] = a
		}
	}
	var out []string
	for _, a := range last {
		if a.Status != "resolved" {
			out = append(out, a.Labels["alertname"]+"/"+a.Labels["severity"])
		}
	}
	return out
}

// find returns the first alert received with this name, status and pid.
func (w *webhookLog) find(name, status, pid string) (alert.Alert, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.alerts {
		if a.Name == name && a.Status == status && a.Labels["pid"] == pid {
			return a, true
		}
	}
	return alert.Alert{}, false
}

// agentProc is a running `leaktrace agent`.
type agentProc struct {
	cmd  *exec.Cmd
	addr string // host:port it listens on

	startFailed bool // exited before listening: no SIGTERM to answer

	mu  sync.Mutex
	log strings.Builder // its stderr so far
}

// logText returns what the agent logged so far.
func (p *agentProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// launchAgent runs `leaktrace agent` with args and returns once it listens;
// the agent gets SIGTERM at cleanup and must exit 0.
func launchAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	dir := binaries(t)
	cmd := exec.Command(filepath.Join(dir, "leaktrace"), append([]string{"agent", "--web.listen-address", "127.0.0.1:0",
		"--incidents.dir", t.TempDir()}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			var rec struct{ Msg, Address string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Address
			}
		}
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil && !p.startFailed {
				t.Errorf("agent exited with %v after SIGTERM", waitErr)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Error("agent did not stop within 15s of SIGTERM")
		}
		// A scrape that could not gather every series is served partly,
		// with a warning in the log: never right.
		if log := p.logText(); strings.Contains(log, `"msg":"serving metrics"`) {
			t.Errorf("the agent could not serve all its metrics (see its log)")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logText())
		}
	})
	select {
	case p.addr = <-addr:
	case <-exited:
		p.startFailed = true
		t.Fatalf("agent exited at start: %v", waitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not listen within 30s")
	}
	return p
}

// waitReady waits for base's /readyz to answer 200 through client; auth,
// when set, adds credentials to each request.
func waitReady(t *testing.T, client *http.Client, base string, auth func(*http.Request)) {
	t.Helper()
	waitFor(t, 30*time.Second, "agent ready", func() bool {
		req, err := http.NewRequest(http.MethodGet, base+"/readyz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != nil {
			auth(req)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startAgent runs `leaktrace agent` with args over plain HTTP and returns
// its base URL once it is ready.
func startAgent(t *testing.T, args ...string) string {
	t.Helper()
	p := launchAgent(t, args...)
	base := "http://" + p.addr
	waitReady(t, http.DefaultClient, base, nil)
	return base
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape fetches and parses the metrics with Prometheus's own text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing metrics: %v", err)
	}
	return mfs
}

// series returns the values of a family's series whose labels include want.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) []float64 {
	var out []float64
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			out = append(out, m.GetGauge().GetValue())
		case m.Counter != nil:
			out = append(out, m.GetCounter().GetValue())
		}
	}
	return out
}

func sum(vs []float64) float64 {
	s := 0.0
	for _, v := range vs {
		s += v
	}
	return s
}

func procFDCount(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/fd: %v", pid, err)
	}
	return len(ents)
}

// TestAgentMetricsAndAlerts runs the agent on a process that leaks a file
// every 10 ms under a 200-fd limit: its series must match /proc/PID/fd, the
// fd-usage and EMFILE alerts must reach a webhook and resolve once it exits,
// and its series must vanish.
func TestAgentMetricsAndAlerts(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	hook := &webhookLog{}
	hs := httptest.NewServer(hook)
	defer hs.Close()
	base := startAgent(t, "--comm", "leaky-c", "--interval", "500ms", "--alert.min-age", "1s",
		"--alert.growth-window", "3s", "--alert.growth-min", "50", "--alert.fd-failure-hold", "2s",
		"--alert.webhook-url", hs.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leaky := exec.CommandContext(ctx, filepath.Join(dir, "leaky-c"), "slow")
	out, err := leaky.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := leaky.Start(); err != nil {
		t.Fatal(err)
	}
	pid := leaky.Process.Pid
	const limit = 200
	lim := unix.Rlimit{Cur: limit, Max: 4096}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		io.Copy(io.Discard, out)
		leaky.Wait()
		close(exited)
	}()
	spid := strconv.Itoa(pid)
	who := map[string]string{"pid": spid, "comm": "leaky-c"}

	// At its limit the process's table stops changing: the series must then
	// be exactly what /proc/PID/fd lists.
	var mfs map[string]*dto.MetricFamily
	waitFor(t, 30*time.Second, "the process at its fd limit, seen by the agent", func() bool {
		mfs = scrape(t, base)
		open := sum(series(mfs, "leaktrace_process_open_handles", who))
		return open >= limit && int(open) == procFDCount(t, pid)
	})
	open := sum(series(mfs, "leaktrace_process_open_handles", who))
	files := sum(series(mfs, "leaktrace_process_open_handles", map[string]string{"pid": spid, "kind": "file"}))
	t.Logf("pid %d: %v handles in metrics (%v files), %d in /proc/%d/fd", pid, open, files, procFDCount(t, pid), pid)
	if files < limit-10 {
		t.Errorf("file handles = %v, want nearly all of %d", files, limit)
	}
	if v := series(mfs, "leaktrace_process_fd_limit", who); len(v) != 1 || v[0] != limit {
		t.Errorf("fd limit series = %v, want [%d]", v, limit)
	}
	if v := series(mfs, "leaktrace_process_fd_usage_ratio", who); len(v) != 1 || v[0] < 1 {
		t.Errorf("usage ratio = %v, want >= 1 at the limit", v)
	}
	waitFor(t, 10*time.Second, "EMFILE failures counted", func() bool {
		return sum(series(scrape(t, base), "leaktrace_process_fd_failures_total", map[string]string{"pid": spid, "errno": "EMFILE"})) > 0
	})
	// Suspects are handles past --min-age as of the last evaluation: they
	// reach most of the table within a tick or two of the limit.
	waitFor(t, 15*time.Second, fmt.Sprintf("one leak_open_file site with most of the %d fds as leak suspects", limit), func() bool {
		mfs = scrape(t, base)
		v := series(mfs, "leaktrace_site_leak_suspects", map[string]string{"function": "leak_open_file"})
		return len(v) == 1 && v[0] >= limit/2
	})
	if v := series(mfs, "leaktrace_events_lost_total", nil); len(v) == 0 {
		t.Error("no events_lost series")
	}

	// The alerts reach the webhook, with the site that leaks named.
	for _, name := range []string{"LeaktraceFDExhausted", "LeaktraceFDUsageHigh"} {
		waitFor(t, 15*time.Second, name+" firing at the webhook", func() bool {
			_, ok := hook.find(name, "firing", spid)
			return ok
		})
	}
	a, _ := hook.find("LeaktraceFDExhausted", "firing", spid)
	if a.Level != alert.LevelCritical || !strings.Contains(a.Annotations["top_sites"], "leak_open_file") {
		t.Errorf("EMFILE alert = %+v, want critical naming leak_open_file", a)
	}
	// Each alert names its host and links back to a page that answers.
	if host, _ := os.Hostname(); a.Labels["instance"] != host {
		t.Errorf("alert instance label %q, want the host name %q", a.Labels["instance"], host)
	}
	hook.mu.Lock()
	gen := hook.raw[0].GeneratorURL
	hook.mu.Unlock()
	if resp, err := http.Get(gen); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("generatorURL %q does not answer: %v %v", gen, err, resp)
	} else {
		resp.Body.Close()
	}

	// The live report is the report model, in mode "agent".
	resp, err := http.Get(base + "/debug/leaks")
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil || rep.Schema != report.Schema || rep.Mode != "agent" {
		t.Fatalf("/debug/leaks: %v, schema %q mode %q", err, rep.Schema, rep.Mode)
	}
	found := false
	for _, s := range rep.Sites {
		found = found || s.Headline.Function == "leak_open_file"
	}
	if !found {
		t.Errorf("/debug/leaks has no leak_open_file site among %d", len(rep.Sites))
	}

	// Once the process is gone its alerts resolve and its series vanish.
	leaky.Process.Kill()
	<-exited
	for _, name := range []string{"LeaktraceFDExhausted", "LeaktraceFDUsageHigh"} {
		waitFor(t, 15*time.Second, name+" resolved at the webhook", func() bool {
			_, ok := hook.find(name, "resolved", spid)
			return ok
		})
	}
	// Every level it passed through is resolved too: none is left firing
	// until a receiver's timeout.
	waitFor(t, 15*time.Second, "every level of every alert resolved", func() bool { return len(hook.unresolved(spid)) == 0 })
	waitFor(t, 10*time.Second, "the process's series to vanish", func() bool {
		mfs := scrape(t, base)
		for _, name := range []string{"leaktrace_process_open_handles", "leaktrace_process_fd_usage_ratio", "leaktrace_process_fd_failures_total"} {
			if len(series(mfs, name, map[string]string{"pid": spid})) > 0 {
				return false
			}
		}
		return sum(series(mfs, "leaktrace_processes_exited_total", nil)) >= 1
	})
}

// TestAgentBadConfigIsOneLine: a config file with an unknown field stops the
// agent at start-up with a line naming the field.
func TestAgentBadConfigIsOneLine(t *testing.T) {
	dir := binaries(t)
	cfg := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(cfg, []byte("thresholds:\n  fd_usage_wran_percent: 60\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(dir, "leaktrace"), "agent", "--config.file", cfg).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 125 {
		t.Fatalf("exit = %v, want 125; output:\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "fd_usage_wran_percent") || !strings.Contains(lines[0], cfg) {
		t.Fatalf("output = %q, want one line naming the file and the field", out)
	}
}
