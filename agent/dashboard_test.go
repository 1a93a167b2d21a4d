package agent

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/incident"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/session"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("GET %s blocked", path)
	}
	return rec
}

// At 1,000 processes the dashboard's data stays small, ranks processes by
// fd usage, lists the growing site with its stack (Python lines first) and
// is served while the tracer's lock is held (the event loop never waits
// on a page).
func TestDashboardAtAThousandProcesses(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Thresholds.GrowthWindow = time.Minute
	a, _ := testAgent(t, cfg)
	limits := make(map[uint32]uint64)
	for pid := uint32(1000); pid < 2000; pid++ {
		limits[pid] = 1024
	}
	f := withFake(t, a, limits)
	f.sites[4] = session.SiteInfo{Key: "site4", Headline: report.Frame{Function: "load_parquet", File: "/srv/app.py", Line: 42, Module: "python"},
		Stack: []report.Frame{{Function: "__open64", Module: "/lib/libc.so.6"}, {Function: "load_parquet", File: "/srv/app.py", Line: 42, Module: "python"},
			{Function: "main", File: "/srv/app.py", Line: 7, Module: "python"}}}
	a.incidents, _ = incident.Open("", 5)
	mono := monotonicNow()
	t0 := time.Now()
	for pid := uint32(1000); pid < 2000; pid++ {
		f.apply(opens(pid, 3, 1+int(pid%50), event.KindFile, 1, mono)...)
	}
	f.apply(opens(1999, 100, 50, event.KindFile, 4, mono)...) // the leak
	a.tick(t0)
	f.apply(opens(1999, 150, 750, event.KindFile, 4, mono)...)
	start := time.Now()
	a.tick(t0.Add(time.Minute))
	t.Logf("evaluation at 1,000 processes (dashboard included): %v", time.Since(start))

	h := a.Handler("/metrics", "test")
	f.mu.Lock() // as if the event loop held it for as long as the pages take
	page := get(t, h, "/")
	api := get(t, h, "/api/dashboard")
	hist := get(t, h, "/api/process?pid=1999")
	js := get(t, h, "/static/app.js")
	f.mu.Unlock()

	if page.Code != 200 || !strings.Contains(page.Body.String(), "leaktrace agent") || !strings.Contains(page.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET / = %d, CSP %q", page.Code, page.Header().Get("Content-Security-Policy"))
	}
	if js.Code != 200 || !strings.Contains(js.Body.String(), "api/dashboard") {
		t.Fatalf("GET /static/app.js = %d", js.Code)
	}
	t.Logf("/api/dashboard at 1,000 processes: %d bytes", api.Body.Len())
	if api.Code != 200 || api.Body.Len() > 1<<20 {
		t.Fatalf("GET /api/dashboard = %d, %d bytes (want under 1 MiB)", api.Code, api.Body.Len())
	}
	var m dashModel
	if err := json.Unmarshal(api.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Processes) != 1000 || m.Processes[0].PID != 1999 || m.Processes[0].Open != 850 || m.Processes[0].Limit != 1024 {
		t.Fatalf("processes: %d, first %+v; want 1000, pid 1999 first", len(m.Processes), m.Processes[0])
	}
	if len(m.Sites) == 0 || m.Sites[0].Function != "load_parquet" || m.Sites[0].Growth != 750 {
		t.Fatalf("top site %+v, want load_parquet grown by 750", m.Sites)
	}
	if st := m.Sites[0].Stack; len(st) != 3 || !st[0].Python || st[0].Line != 42 || st[2].Function != "__open64" {
		t.Errorf("stack %+v: want the Python lines first", st)
	}
	if m.Flame == nil || m.Flame.Value < 800 {
		t.Fatalf("flame %+v", m.Flame)
	}
	found := false
	for _, c := range m.Flame.Children {
		found = found || c.Name == "main (/srv/app.py:7)" && c.Value == 800
	}
	if !found {
		t.Errorf("flame roots %+v: want main (/srv/app.py:7) with 800", m.Flame.Children)
	}
	if m.Thresholds.Warn != 70 || m.Thresholds.Error != 85 || m.Thresholds.Critical != 95 {
		t.Errorf("thresholds %+v", m.Thresholds)
	}
	var h1 dashHistory
	if err := json.Unmarshal(hist.Body.Bytes(), &h1); err != nil || len(h1.Open) != 2 || h1.Open[1] != 850 {
		t.Errorf("history %s: %v", hist.Body, err)
	}
	if r := get(t, h, "/api/process?pid=1"); r.Code != 404 {
		t.Errorf("history of an untraced pid: %d", r.Code)
	}
}

// The page loads nothing from elsewhere: no absolute URL in what it
// references (the SVG namespace is a name, not a fetch).
func TestDashboardIsSelfContained(t *testing.T) {
	ref := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|fetch\(\s*["']https?:|@import`)
	err := fs.WalkDir(webFiles, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, _ := webFiles.Open(path)
		b, _ := io.ReadAll(f)
		f.Close()
		if m := ref.Find(b); m != nil {
			t.Errorf("%s references %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
