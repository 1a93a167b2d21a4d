package agent

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/report"
)

// headlessChromium returns Debian's chromium; CI must have it
// (scripts/ci/operator.sh), a developer without it is told.
func headlessChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is needed (scripts/ci/operator.sh installs it)")
	}
	t.Skip("skipping: no chromium (apt-get install -y chromium)")
	return ""
}

// The page stays usable at 1,000 processes: a real browser renders the
// first 200 rows, offers the rest, and still shows the top site and the
// flame graph.
func TestDashboardInBrowserAtAThousandProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser in -short")
	}
	browser := headlessChromium(t)
	cfg := DefaultConfig()
	a, _ := testAgent(t, cfg)
	limits := make(map[uint32]uint64)
	for pid := uint32(1000); pid < 2000; pid++ {
		limits[pid] = 1024
	}
	f := withFake(t, a, limits)
	s5 := f.sites[5]
	s5.Stack = []report.Frame{s5.Headline, {Function: "main", File: "srv.c", Line: 99}}
	f.sites[5] = s5
	mono := monotonicNow()
	for pid := uint32(1000); pid < 2000; pid++ {
		f.apply(opens(pid, 3, 1+int(pid%50), event.KindFile, event.StackID(1+pid%3), mono)...)
	}
	f.apply(opens(1999, 100, 900, event.KindFile, 5, mono)...)
	a.tick(time.Now())
	srv := httptest.NewServer(a.Handler("/metrics", "test"))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--user-data-dir="+filepath.Join(t.TempDir(), "profile"), "--virtual-time-budget=3000",
		"--dump-dom", srv.URL+"/").Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	t.Logf("chromium loaded and rendered 1,000 processes in %v; DOM %d bytes", time.Since(start).Round(time.Millisecond), len(dom))
	if n := strings.Count(dom, "<tr data-pid="); n != 200 {
		t.Errorf("%d process rows rendered, want the first 200", n)
	}
	for _, want := range []string{`<tr data-pid="1999"`, `show all 1000`, `(1000 traced)`, `<summary class="site">fn5 `, `data-name="fn5 (srv.c:5)"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %s", want)
		}
	}
	if m := regexp.MustCompile(`<tr data-pid="(\d+)"`).FindStringSubmatch(dom); m == nil || m[1] != "1999" {
		t.Errorf("first row %v, want pid 1999 (the highest fd usage)", m)
	}
}
