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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/alert"
	"github.com/leaktrace/leaktrace/incident"
	"github.com/leaktrace/leaktrace/procfs"
)

// lineSeen is closed once r yields the line want; the rest of r is read
// and dropped, so that the writer never blocks on a full pipe.
func lineSeen(r io.Reader, want string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if sc.Text() == want {
				close(ch)
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	return ch
}

// markerLine is the line of the first line of file that contains marker.
func markerLine(t *testing.T, file, marker string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, marker) {
			return i + 1
		}
	}
	t.Fatalf("%s has no %q", file, marker)
	return 0
}

func getJSON(t *testing.T, url string, v any) bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	return json.NewDecoder(resp.Body).Decode(v) == nil
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}

// TestAgentMemory runs the agent on a program that grows its resident
// memory to 50 MiB and holds it: the scraped series must equal
// /proc/PID/status, LeaktraceMemoryGrowth must fire while it grows and
// resolve once it holds, LeaktraceMemoryHigh fire at its level and resolve
// when the process is gone, with its series.
func TestAgentMemory(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	hook := &webhookLog{}
	hs := httptest.NewServer(hook)
	defer hs.Close()
	base := startAgent(t, "--comm", "memgrow", "--interval", "500ms", "--alert.growth-window", "4s",
		"--alert.memory-warn", "20MiB", "--alert.memory-error", "40MiB", "--alert.memory-critical", "4GiB",
		"--alert.memory-growth-per-hour", "1GiB", "--incidents.dir", t.TempDir(), "--alert.webhook-url", hs.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// 512 KiB every 80 ms: about 6 MiB/s (22 GiB/h) for 8 s.
	prog := exec.CommandContext(ctx, filepath.Join(dir, "memgrow"), "512", "80", "50")
	out, err := prog.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Start(); err != nil {
		t.Fatal(err)
	}
	defer prog.Process.Kill()
	pid := prog.Process.Pid
	spid := strconv.Itoa(pid)
	holding := lineSeen(out, "holding")

	waitFor(t, 20*time.Second, "LeaktraceMemoryGrowth firing while it grows", func() bool {
		_, ok := hook.find("LeaktraceMemoryGrowth", "firing", spid)
		return ok
	})
	select {
	case <-holding:
	case <-time.After(30 * time.Second):
		t.Fatal("memgrow did not reach 50 MiB within 30s")
	}

	// Idle, its memory no longer changes: the next evaluation's values are
	// exactly the kernel's.
	who := map[string]string{"pid": spid, "comm": "memgrow"}
	var last string
	waitFor(t, 10*time.Second, "scraped memory equal to /proc/PID/status", func() bool {
		m, err := procfs.ReadMemory(pid)
		if err != nil {
			t.Fatal(err)
		}
		mfs := scrape(t, base)
		got := map[string]float64{"virtual": sum(series(mfs, "leaktrace_process_virtual_memory_bytes", who))}
		for _, k := range []string{"anon", "file", "shmem"} {
			got[k] = sum(series(mfs, "leaktrace_process_resident_memory_bytes", map[string]string{"pid": spid, "kind": k}))
		}
		want := map[string]float64{"virtual": float64(m.Virtual), "anon": float64(m.Anon), "file": float64(m.File), "shmem": float64(m.Shmem)}
		last = fmt.Sprintf("scraped %v, /proc %v", got, want)
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	t.Log(last)
	m, _ := procfs.ReadMemory(pid)
	if m.Anon < 50<<20 {
		t.Errorf("anon %d bytes: memgrow should hold 50 MiB", m.Anon)
	}

	waitFor(t, 15*time.Second, "LeaktraceMemoryHigh firing at the webhook", func() bool {
		_, ok := hook.find("LeaktraceMemoryHigh", "firing", spid)
		return ok
	})
	// 50 MiB is past the error level (40 MiB), under critical (4 GiB).
	var firing []alert.Alert
	waitFor(t, 10*time.Second, "LeaktraceMemoryHigh at level error", func() bool {
		getJSON(t, base+"/debug/alerts", &firing)
		for _, a := range firing {
			if a.Name == "LeaktraceMemoryHigh" && a.Labels["pid"] == spid && a.Level == alert.LevelError {
				return true
			}
		}
		return false
	})
	waitFor(t, 15*time.Second, "LeaktraceMemoryGrowth resolved once it holds", func() bool {
		_, ok := hook.find("LeaktraceMemoryGrowth", "resolved", spid)
		return ok
	})
	prog.Process.Kill()
	prog.Wait()
	waitFor(t, 15*time.Second, "LeaktraceMemoryHigh resolved after exit", func() bool {
		_, ok := hook.find("LeaktraceMemoryHigh", "resolved", spid)
		return ok
	})
	waitFor(t, 10*time.Second, "its memory series to vanish", func() bool {
		return len(series(scrape(t, base), "leaktrace_process_resident_memory_bytes", map[string]string{"pid": spid})) == 0
	})
}

// TestAgentIncidentOutlivesTheProcess: a program leaks files until EMFILE
// under a 64-fd limit and exits at once. After it is gone, the incident the
// agent kept names the leaking function and the line of its open(), with
// every file it leaked; the directory keeps only the newest incidents;
// `leaktrace report` renders one.
func TestAgentIncidentOutlivesTheProcess(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	incDir := t.TempDir()
	base := startAgent(t, "--comm", "fdexhaust", "--interval", "500ms", "--incidents.dir", incDir, "--incidents.max", "2")
	src := filepath.Join(repoRoot(), "testdata", "fdexhaust", "fdexhaust.c")
	line := markerLine(t, src, "/* the leak */")

	var pids []int
	var leaked int
	seen := make(map[string]bool)
	for range 3 {
		out, err := exec.Command(filepath.Join(dir, "fdexhaust"), "64").Output()
		if err != nil {
			t.Fatalf("fdexhaust: %v", err)
		}
		if _, err := fmt.Sscanf(string(out), "leaked %d", &leaked); err != nil {
			t.Fatalf("fdexhaust said %q", out)
		}
		// Output returned once it exited and was reaped. Its incident is
		// the newest, under a name not seen before.
		var list []incident.Summary
		waitFor(t, 15*time.Second, "an incident for this run", func() bool {
			return getJSON(t, base+"/debug/incidents", &list) && len(list) > 0 && !seen[list[0].Name]
		})
		seen[list[0].Name] = true
		pids = append(pids, list[0].PID)
	}
	pid := pids[len(pids)-1]
	if procfs.Exists(pid) {
		t.Fatalf("pid %d still exists: the test needs it gone", pid)
	}

	var list []incident.Summary
	getJSON(t, base+"/debug/incidents", &list)
	if len(list) != 2 || list[0].PID != pid || list[1].PID != pids[1] {
		t.Fatalf("incidents %+v: want the two newest (pids %v)", list, pids[1:])
	}
	files, _ := filepath.Glob(filepath.Join(incDir, "*.json"))
	if len(files) != 2 {
		t.Errorf("incident directory holds %v, want 2 files (the oldest removed)", files)
	}

	var inc incident.Incident
	if !getJSON(t, base+"/debug/incidents/"+list[0].Name, &inc) {
		t.Fatalf("GET /debug/incidents/%s failed", list[0].Name)
	}
	if inc.Errno != "EMFILE" || inc.Comm != "fdexhaust" || len(inc.Sites) == 0 {
		t.Fatalf("incident %+v", inc)
	}
	top := inc.Sites[0]
	t.Logf("pid %d (gone): %d fds open at EMFILE; top site %s ×%d", pid, inc.Open, incident.SiteName(top), top.Count)
	if top.Headline.Function != "leak_until_emfile" || !strings.HasSuffix(top.Headline.File, "fdexhaust.c") || top.Headline.Line != line {
		t.Errorf("top site %s, want leak_until_emfile (fdexhaust.c:%d)", incident.SiteName(top), line)
	}
	if top.Count != leaked || top.Kinds["file"] != leaked {
		t.Errorf("top site holds %d (%v), the program leaked %d files", top.Count, top.Kinds, leaked)
	}
	if len(top.Stack) == 0 {
		t.Error("top site has no stack")
	}

	path := filepath.Join(incDir, list[0].Name)
	out, err := exec.Command(filepath.Join(dir, "leaktrace"), "report", path).CombinedOutput()
	if err != nil {
		t.Fatalf("leaktrace report %s: %v\n%s", path, err, out)
	}
	want := fmt.Sprintf("%d  leak_until_emfile (testdata/fdexhaust/fdexhaust.c:%d)", leaked, line)
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "EMFILE") {
		t.Errorf("report of the incident lacks %q:\n%s", want, out)
	}
}

// chromium returns Debian's headless browser, failing in CI when it is
// missing (scripts/ci/operator.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is needed for the dashboard test (scripts/ci/operator.sh installs it)")
	}
	t.Skip("skipping: no chromium (apt-get install -y chromium)")
	return ""
}

// artifactDir is where CI keeps what a test leaves for people to look at
// ($CI_ARTIFACTS_DIR), else bin/ in the repository (ignored by git).
func artifactDir(t *testing.T) string {
	dir := os.Getenv("CI_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "bin")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browse runs headless chromium on url with extra flags and returns stdout.
func browse(t *testing.T, browser, profile, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
		"--user-data-dir=" + profile, "--virtual-time-budget=5000", "--window-size=1400,1600"}, flags...)
	cmd := exec.CommandContext(ctx, browser, append(args, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("chromium %v: %v", flags, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", flags, err, stderr.String())
	}
	return string(out)
}

// TestDashboardInBrowser loads the agent's dashboard in headless chromium
// while the agent traces a Python service leaking files and memory: the
// rendered DOM must name the leaking Python function and line in the top
// sites and the flame graph, and list the process; a screenshot is kept as
// an artifact.
func TestDashboardInBrowser(t *testing.T) {
	requireRoot(t)
	browser := chromium(t)
	binaries(t)
	py := pythons(t)["debian"]
	tmp := t.TempDir()
	// comm is the name exec'd: a link named leaksvc lets the kernel filter
	// pick this interpreter alone.
	exe := filepath.Join(tmp, "leaksvc")
	if err := os.Symlink(py, exe); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(repoRoot(), "testdata", "leaksvc", "leaksvc.py")
	line := markerLine(t, script, "# leak: load_parquet")
	growLine := markerLine(t, script, "# grows: cache_rows")
	base := startAgent(t, "--comm", "leaksvc", "--interval", "1s", "--alert.growth-window", "6s", "--alert.growth-min", "20",
		"--alert.min-age", "1s", "--incidents.dir", filepath.Join(tmp, "incidents"))

	svc := exec.Command(exe, script, "120")
	started := time.Now()
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { svc.Process.Kill(); svc.Wait() }()
	pid := svc.Process.Pid
	// 300 fds: at 50 leaks a second it runs out within seconds and keeps
	// serving, so the page has a process at its limit and an incident.
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 300, Max: 300}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}

	type site struct {
		Function, Location string
		Growth             int
		MappedBytes        uint64 `json:"mapped_bytes"`
	}
	var dash struct {
		Processes []struct{ PID int }
		Sites     []site
	}
	where := fmt.Sprintf("leaksvc.py:%d", line)
	waitFor(t, 45*time.Second, "load_parquet growing on /api/dashboard", func() bool {
		if !getJSON(t, base+"/api/dashboard", &dash) {
			return false
		}
		for _, s := range dash.Sites {
			if s.Function == "load_parquet" && strings.HasSuffix(s.Location, where) && s.Growth > 0 {
				return true
			}
		}
		return false
	})
	// The memory it grows: bytearrays of 256 KiB, each mapped by malloc at
	// cache_rows's line.
	growWhere := fmt.Sprintf("leaksvc.py:%d", growLine)
	waitFor(t, 30*time.Second, "cache_rows with mapped bytes on /api/dashboard", func() bool {
		if !getJSON(t, base+"/api/dashboard", &dash) {
			return false
		}
		for _, s := range dash.Sites {
			if s.Function == "cache_rows" && strings.HasSuffix(s.Location, growWhere) && s.MappedBytes >= 10<<20 {
				return true
			}
		}
		return false
	})
	metrics := getText(t, base+"/metrics")
	mappedSeries := regexp.MustCompile(`leaktrace_site_mapped_bytes\{function="cache_rows",kind="mapping",location="[^"]*` + regexp.QuoteMeta(growWhere) + `",site="[0-9a-f]+"\} [0-9.e+]+`)
	if !mappedSeries.MatchString(metrics) {
		t.Errorf("/metrics lacks cache_rows's mapped bytes (%s)", mappedSeries)
	}

	var incidents []incident.Summary
	waitFor(t, 30*time.Second, "an incident of the service", func() bool {
		return getJSON(t, base+"/debug/incidents", &incidents) && len(incidents) > 0
	})
	t.Logf("service leaking, at its limit, incident taken: %v after its start", time.Since(started).Round(time.Millisecond))

	// One load dumps the DOM and takes the screenshot.
	shot := filepath.Join(artifactDir(t), "dashboard.png")
	os.Remove(shot)
	dom := browse(t, browser, filepath.Join(tmp, "profile"), base+"/", "--dump-dom", "--screenshot="+shot)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(fmt.Sprintf(`<tr data-pid="%d"[^>]*>`, pid)),                                                // the process row
		regexp.MustCompile(`<summary class="site">load_parquet <span class="muted">[^<]*` + regexp.QuoteMeta(where)),   // top sites
		regexp.MustCompile(`<li class="py">load_parquet [^<]*` + regexp.QuoteMeta(where)),                              // its stack, Python first
		regexp.MustCompile(`class="frame"[^>]*data-name="load_parquet \([^"]*` + regexp.QuoteMeta(where)),              // the flame graph
		regexp.MustCompile(`class="incident">.*EMFILE.*load_parquet \([^)]*` + regexp.QuoteMeta(where)),                // recent incidents
		regexp.MustCompile(`class="alert critical"><span class="name">LeaktraceFDExhausted`),                           // firing alerts
		regexp.MustCompile(`<summary class="site">cache_rows <span class="muted">[^<]*` + regexp.QuoteMeta(growWhere)), // the site that maps memory
	} {
		if !want.MatchString(dom) {
			t.Errorf("the dashboard's DOM lacks %s", want)
		}
	}
	if t.Failed() {
		os.WriteFile(filepath.Join(artifactDir(t), "dashboard-dom.html"), []byte(dom), 0o644)
	}

	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	head := make([]byte, 8)
	io.ReadFull(f, head)
	fi, _ := f.Stat()
	if string(head) != "\x89PNG\r\n\x1a\n" || fi.Size() < 10<<10 {
		t.Errorf("screenshot %s: %d bytes, not a PNG of a page", shot, fi.Size())
	}
	t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
}

// TestDashboardBehindWebConfig: the dashboard and its data sit behind the
// same web config (basic auth here) as the metrics.
func TestDashboardBehindWebConfig(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw-for-tests"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, []byte(fmt.Sprintf("basic_auth_users:\n  ops: %s\n", hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launchAgent(t, "--comm", "nothing-here", "--web.config.file", webConfig, "--incidents.dir", filepath.Join(dir, "inc"))
	base := "http://" + p.addr
	waitReady(t, http.DefaultClient, base, func(r *http.Request) { r.SetBasicAuth("ops", "pw-for-tests") })
	for _, path := range []string{"/", "/static/app.js", "/api/dashboard", "/debug/incidents", "/metrics"} {
		for _, auth := range []bool{false, true} {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if auth {
				req.SetBasicAuth("ops", "pw-for-tests")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := http.StatusUnauthorized
			if auth {
				want = http.StatusOK
			}
			if resp.StatusCode != want {
				t.Errorf("GET %s (credentials: %v) = %d, want %d", path, auth, resp.StatusCode, want)
			}
		}
	}
}

// memoryCgroup makes a cgroup limited to limit bytes of memory on this
// host's memory controller (cgroup v1's hierarchy, or v2 where the root
// delegates memory) and returns the file a pid is written to to move it in.
// In CI the host has one of them (hybrid systemd: memory on v1).
func memoryCgroup(t *testing.T, limit uint64) string {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var v1, v2 string
	for _, line := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		switch {
		case g[0] == "cgroup" && slices.Contains(strings.Split(g[2], ","), "memory"):
			v1 = f[4]
		case g[0] == "cgroup2":
			if b, err := os.ReadFile(filepath.Join(f[4], "cgroup.subtree_control")); err == nil && slices.Contains(strings.Fields(string(b)), "memory") {
				v2 = f[4]
			}
		}
	}
	file := "memory.limit_in_bytes"
	root := v1
	if root == "" {
		root, file = v2, "memory.max"
	}
	if root == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no memory controller to make a cgroup with (neither v1's hierarchy nor v2 delegating memory)")
		}
		t.Skip("skipping: no memory controller to make a cgroup with")
	}
	dir := filepath.Join(root, fmt.Sprintf("leaktrace-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Empty once its processes are reaped; the kernel may take a moment.
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatUint(limit, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("cgroup %s, %s = %d", dir, file, limit)
	return filepath.Join(dir, "cgroup.procs")
}

// TestAgentMemoryCgroupLimit: a process in a memory-limited cgroup (a real
// one: v1's memory.limit_in_bytes on this host's kind, v2's memory.max
// elsewhere) shows the limit in its series, and holding 50 MiB of a 60 MiB
// limit (83 %) fires LeaktraceMemoryHigh at warning by the fraction alone.
func TestAgentMemoryCgroupLimit(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	const limit = 60 << 20
	procs := memoryCgroup(t, limit)
	base := startAgent(t, "--comm", "memgrow", "--interval", "500ms",
		"--alert.memory-warn", "100GiB", "--alert.memory-error", "200GiB", "--alert.memory-critical", "300GiB",
		"--alert.memory-growth-per-hour", "1TiB", "--incidents.dir", t.TempDir())

	// The shell moves itself in, then becomes memgrow: all of it is charged there.
	prog := exec.Command("sh", "-c", "echo $$ > "+procs+" && exec "+filepath.Join(dir, "memgrow")+" 1024 20 50")
	out, err := prog.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { prog.Process.Kill(); prog.Wait() }()
	spid := strconv.Itoa(prog.Process.Pid)
	holding := lineSeen(out, "holding")
	select {
	case <-holding:
	case <-time.After(30 * time.Second):
		t.Fatal("memgrow did not reach 50 MiB within 30s")
	}
	waitFor(t, 10*time.Second, "leaktrace_process_memory_limit_bytes of memgrow", func() bool {
		got := series(scrape(t, base), "leaktrace_process_memory_limit_bytes", map[string]string{"pid": spid})
		return len(got) == 1 && got[0] == limit
	})
	var firing []alert.Alert
	waitFor(t, 15*time.Second, "LeaktraceMemoryHigh at warning by the cgroup's limit", func() bool {
		getJSON(t, base+"/debug/alerts", &firing)
		for _, a := range firing {
			if a.Name == "LeaktraceMemoryHigh" && a.Labels["pid"] == spid {
				if a.Level != alert.LevelWarning || !strings.Contains(a.Annotations["summary"]+a.Annotations["description"], "of its cgroup's memory limit") {
					t.Fatalf("alert %+v: want level warning, naming the cgroup's limit", a)
				}
				return true
			}
		}
		return false
	})
}
