package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/policy"
	"github.com/leaktrace/leaktrace/report"
)

// savedReport writes a run's report as `run --json` would: 2 sockets from
// db.connect, 1 file from io.read_parquet.
func savedReport(t *testing.T, dir string) string {
	t.Helper()
	connect := []report.Frame{{Address: 0x500000, Function: "db.connect", File: "/srv/app/db.py", Line: 42, Module: "/usr/bin/python3"}}
	parquet := []report.Frame{{Address: 0x510000, Function: "io.read_parquet", File: "/srv/app/io.py", Line: 17, Module: "/usr/bin/python3"}}
	leak := func(fd int, kind, site string, stack []report.Frame) report.Leak {
		return report.Leak{PID: 10, Comm: "python3", Exe: "/usr/bin/python3", FD: fd, Kind: kind, AgeSeconds: 1, Site: site, Stack: stack}
	}
	r := &report.Report{Schema: report.Schema, Mode: "run", Command: []string{"python3", "app.py"}, Complete: true,
		Leaks:     []report.Leak{leak(5, "socket", "connect", connect), leak(6, "socket", "connect", connect), leak(7, "file", "parquet", parquet)},
		Sites:     []report.Site{{Key: "connect", Headline: connect[0], Stack: connect}, {Key: "parquet", Headline: parquet[0], Stack: parquet}},
		Processes: []report.Process{{PID: 10, PPID: 1, Comm: "python3", Exe: "/usr/bin/python3", Exited: true}},
	}
	(&policy.Policy{}).Apply(r)
	path := filepath.Join(dir, "leaks.json")
	if err := writeFile(path, func(w *os.File) error { return exporter.WriteJSON(w, r) }); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	saved := savedReport(t, dir)
	supp := filepath.Join(dir, "leaktrace.supp")
	os.WriteFile(supp, []byte("# pool lives for the process\nfun:db.connect kind:socket\n"), 0o644)
	badSupp := filepath.Join(dir, "bad.supp")
	os.WriteFile(badSupp, []byte("fun:x\nfunction:y\n"), 0o644)
	base := filepath.Join(dir, "base.json")
	if code := run([]string{"report", saved, "--format", "baseline", "-o", base}); code != 0 {
		t.Fatalf("writing a baseline: exit %d", code)
	}
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no budget renders", []string{"report", saved, "-o", out}, 0},
		{"total within", []string{"report", saved, "--budget", "3", "-o", out}, 0},
		{"total over", []string{"report", saved, "--budget", "2", "-o", out}, 99},
		{"kind over", []string{"report", saved, "--budget", "socket=1,file=5", "-o", out}, 99},
		{"kind within", []string{"report", saved, "--budget", "socket=2", "--budget", "file=1", "-o", out}, 0},
		{"site over", []string{"report", saved, "--budget", "site:db.connect=1", "-o", out}, 99},
		{"every site over", []string{"report", saved, "--budget", "site=1", "-o", out}, 99},
		{"suppressed", []string{"report", saved, "--budget", "socket=0", "--suppressions", supp, "-o", out}, 0},
		{"baselined", []string{"report", saved, "--budget", "0", "--baseline", base, "-o", out}, 0},
		{"a saved report's verdict alone does not fail", []string{"report", saved, "--min-age", "10s", "-o", out}, 0},
		{"min-age leaves young leaks out", []string{"report", saved, "--budget", "0", "--min-age", "2s", "-o", out}, 0},
		{"bad suppression file", []string{"report", saved, "--suppressions", badSupp}, 125},
		{"bad budget", []string{"report", saved, "--budget", "sockets=1"}, 125},
		{"bad format", []string{"report", saved, "--format", "xml"}, 125},
		{"no such report", []string{"report", filepath.Join(dir, "nope.json")}, 125},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code := run(tc.args); code != tc.code {
				t.Errorf("leaktrace %s: exit %d, want %d", strings.Join(tc.args, " "), code, tc.code)
			}
		})
	}
}

// TestReportFormats re-renders a saved report in every format and reads each
// back with its reader.
func TestReportFormats(t *testing.T) {
	dir := t.TempDir()
	saved := savedReport(t, dir)
	for _, format := range []string{"text", "json", "pprof", "sarif", "junit", "baseline"} {
		out := filepath.Join(dir, "out."+format)
		if code := run([]string{"report", saved, "--format", format, "-o", out, "--budget", "socket=5"}); code != 0 {
			t.Fatalf("%s: exit %d", format, code)
		}
		data, err := os.ReadFile(out)
		if err != nil || len(data) == 0 {
			t.Fatalf("%s: %v, %d bytes", format, err, len(data))
		}
		switch format {
		case "text":
			if !strings.Contains(string(data), "budget socket=5: ok (2 leaked)") {
				t.Errorf("text summary:\n%s", data)
			}
		case "json":
			r, err := exporter.ReadJSON(strings.NewReader(string(data)))
			if err != nil || r.Budget == nil || r.Budget.Kinds[0].Leaked != 2 {
				t.Errorf("json: %v %+v", err, r)
			}
		case "baseline":
			b, err := policy.ReadBaseline(strings.NewReader(string(data)))
			if err != nil || len(b.Sites) != 2 {
				t.Errorf("baseline: %v %+v", err, b)
			}
		}
	}
}

// Judging a saved report that lost events: 98 unless --allow-incomplete,
// which judges it on its counts.
func TestReportIncompleteBudget(t *testing.T) {
	dir := t.TempDir()
	saved := savedReport(t, dir)
	r, err := readReport(saved, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Complete, r.Events.Lost = false, 88659
	lossy := filepath.Join(dir, "lossy.json")
	if err := writeFile(lossy, func(w *os.File) error { return exporter.WriteJSON(w, r) }); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"report", lossy, "--budget", "245", "-o", out}, 98},
		{[]string{"report", lossy, "--budget", "245", "--allow-incomplete", "-o", out}, 0},
		{[]string{"report", lossy, "--budget", "1", "--allow-incomplete", "-o", out}, 99},
		{[]string{"report", lossy, "-o", out}, 0}, // re-rendering alone never fails
		{[]string{"report", saved, "--budget", "245", "-o", out}, 0},
	} {
		if code := run(tc.args); code != tc.code {
			t.Errorf("leaktrace %s: exit %d, want %d", strings.Join(tc.args, " "), code, tc.code)
		}
	}
}
