package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/incident"
	"github.com/leaktrace/leaktrace/report"
)

// `leaktrace report` renders an incident the agent wrote, as text or JSON,
// and a damaged one is a one-line usage error.
func TestReportRendersAnIncident(t *testing.T) {
	dir := t.TempDir()
	st, err := incident.Open(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	name, err := st.Add(&incident.Incident{Time: time.Now(), PID: 77, Comm: "svc", Errno: "EMFILE", FDLimit: 64, Open: 64,
		Kinds: map[string]int{"file": 64}, Ages: incident.AgeBuckets(nil),
		Sites: []incident.Site{{Key: "k", Headline: report.Frame{Function: "load_parquet", File: "/srv/app.py", Line: 15}, Count: 64}},
		FDs:   []incident.FD{{FD: 3, Kind: "file", Target: "/data/x.parquet", Site: "k"}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	for _, tc := range []struct {
		format, want string
	}{{"text", "64  load_parquet (/srv/app.py:15)"}, {"json", `"schema": "leaktrace.incident/v1"`}} {
		out := filepath.Join(dir, "out."+tc.format)
		if code := run([]string{"report", path, "--format", tc.format, "-o", out}); code != 0 {
			t.Fatalf("report --format %s: exit %d", tc.format, code)
		}
		b, _ := os.ReadFile(out)
		if !strings.Contains(string(b), tc.want) || !strings.Contains(string(b), "/data/x.parquet") {
			t.Errorf("--format %s lacks %q:\n%s", tc.format, tc.want, b)
		}
	}
	if code := run([]string{"report", path, "--format", "sarif", "-o", filepath.Join(dir, "x")}); code != exitUsage {
		t.Errorf("an incident as sarif: exit %d, want %d", code, exitUsage)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"schema": "leaktrace.incident/v1", "pid": -4}`), 0o644)
	if code := run([]string{"report", bad}); code != exitUsage {
		t.Errorf("a damaged incident: exit %d, want %d", code, exitUsage)
	}
}
