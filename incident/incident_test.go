package incident

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

func sample(pid int, at time.Time) *Incident {
	return &Incident{Time: at, PID: pid, Comm: "srv", Errno: "EMFILE", FDLimit: 64, Open: 64, Complete: true,
		Memory: &Memory{Resident: 3 << 20, Anon: 1 << 20, File: 2 << 20, Virtual: 10 << 20},
		Kinds:  map[string]int{"file": 60, "pipe": 4}, Ages: AgeBuckets([]float64{1, 20, 4000}),
		Sites: []Site{{Key: "k1", Headline: report.Frame{Function: "leak_until_emfile", File: "fdexhaust.c", Line: 17}, Count: 60,
			Stack: []report.Frame{{Function: "open", Module: "/lib/libc.so.6"}, {Function: "leak_until_emfile", File: "fdexhaust.c", Line: 17}}},
			{Count: 4}},
		FDs: []FD{{FD: 3, Kind: "file", Target: "/dev/null", AgeSeconds: 1, Site: "k1"}}}
}

func TestStoreBoundedOldestFirst(t *testing.T) {
	dir := t.TempDir()
	// Files that are not incidents stay untouched.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	var names []string
	for i := range 5 {
		n, err := s.Add(sample(100+i, t0.Add(time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{names[2], names[3], names[4], "notes.txt"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("directory holds %v, want %v (the two oldest removed)", got, want)
	}
	if l := s.List(); len(l) != 3 || l[0].Name != names[4] || l[0].TopSites[0].Headline.Function != "leak_until_emfile" || l[0].TopSites[0].Stack != nil {
		t.Errorf("List = %+v, want 3, newest first, top sites without stacks", l)
	}
	// A new store over the directory sees the same, and reads them back whole.
	s2, err := Open(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l := s2.List(); len(l) != 2 || l[1].Name != names[3] {
		t.Errorf("reopened with max 2: %+v", l)
	}
	inc, err := s2.Read(names[4])
	if err != nil || inc.PID != 104 || len(inc.FDs) != 1 || inc.Sites[0].Stack[1].Line != 17 {
		t.Errorf("Read = %+v, %v", inc, err)
	}
	if _, err := s2.Read("../etc/passwd"); err == nil {
		t.Error("Read of a path outside the store: no error")
	}
	// Same time and pid: distinct names.
	a, _ := s2.Add(sample(7, t0))
	b, _ := s2.Add(sample(7, t0))
	if a == b {
		t.Errorf("two incidents named %s", a)
	}
}

func TestStoreInMemory(t *testing.T) {
	s, err := Open("", 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s.Add(sample(1+i, time.Unix(int64(i), 0)))
	}
	l := s.List()
	if len(l) != 2 || l[0].PID != 3 {
		t.Fatalf("List = %+v", l)
	}
	if inc, err := s.Read(l[1].Name); err != nil || inc.PID != 2 {
		t.Errorf("Read = %+v, %v", inc, err)
	}
}

func TestWriteText(t *testing.T) {
	inc := sample(42, time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))
	inc.Name = "x.json"
	var b bytes.Buffer
	if err := WriteText(&b, inc, TextOptions{FDs: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pid 42 (srv) failed to get an fd: EMFILE, 64 fds open of a limit of 64",
		"60  leak_until_emfile (fdexhaust.c:17)", "leak_until_emfile fdexhaust.c:17", "open [libc.so.6]",
		"resident 3.0 MiB", "file 60, pipe 4", "<10s 1", "(open before tracing or no stack)", "/dev/null"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	if inc.TopSites(1) != "leak_until_emfile (fdexhaust.c:17) ×60" {
		t.Errorf("TopSites = %q", inc.TopSites(1))
	}
}

func TestParse(t *testing.T) {
	inc := sample(1, time.Unix(0, 0))
	inc.Schema = Schema
	data, _ := json.Marshal(inc)
	if !IsIncident(data) {
		t.Error("IsIncident: false for an incident")
	}
	if got, err := Parse(data); err != nil || got.Sites[0].Count != 60 {
		t.Errorf("Parse = %+v, %v", got, err)
	}
	// A later minor version only adds fields: read.
	if _, err := Parse([]byte(`{"schema":"leaktrace.incident/v1.4","pid":1,"new_field":3}`)); err != nil {
		t.Errorf("a v1.4 incident: %v", err)
	}
	for _, bad := range []string{`{"schema":"leaktrace.incident/v2","pid":1}`, `{"schema":"leaktrace.incident/v10","pid":1}`, `{"schema":"leaktrace.incident/v1","pid":0}`,
		`{"schema":"leaktrace.incident/v1","pid":1}{}`, `{"schema":"leaktrace.report/v1.2"}`, `[]`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s): no error", bad)
		}
	}
	if IsIncident([]byte(`{"schema": "leaktrace/1.3"}`)) {
		t.Error("IsIncident: true for a report")
	}
}

func FuzzParse(f *testing.F) {
	inc := sample(1, time.Unix(0, 0))
	inc.Schema = Schema
	data, _ := json.Marshal(inc)
	f.Add(data)
	f.Add([]byte(`{"schema":"leaktrace.incident/v1","pid":3,"sites":[{"count":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		inc, err := Parse(data)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := WriteText(&b, inc, TextOptions{FDs: true}); err != nil {
			t.Fatal(err)
		}
		inc.Summarize(3)
		inc.TopSites(3)
	})
}
