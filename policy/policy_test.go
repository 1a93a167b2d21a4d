package policy

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

var (
	connect = []report.Frame{
		{Address: 0x7f0000001000, Function: "__connect", File: "connect.c", Line: 26, Module: "/usr/lib/libc.so.6"},
		{Address: 0x500000, Function: "db.connect", File: "/srv/app/db.py", Line: 42, Module: "/usr/bin/python3"},
	}
	parquet = []report.Frame{
		{Address: 0x7f0000002000, Function: "__libc_open64", Module: "/usr/lib/libc.so.6"},
		{Address: 0x510000, Function: "io.read_parquet", File: "/srv/app/vendor/io.py", Line: 17, Module: "/usr/bin/python3"},
	}
)

// fixture: 3 sockets from db.connect (one opened 10ms before exit), 2 files
// from io.read_parquet, an inherited copy and a runtime thread, in two
// processes of two executables.
func fixture() *report.Report {
	sock := func(pid, fd int, age float64) report.Leak {
		return report.Leak{PID: pid, Comm: "python3", Exe: "/usr/bin/python3", FD: fd, Kind: "socket", Target: "tcp 10.0.0.9:5432", AgeSeconds: age, Site: "connect", Stack: connect}
	}
	file := func(fd int) report.Leak {
		return report.Leak{PID: 10, Comm: "python3", Exe: "/usr/bin/python3", FD: fd, Kind: "file", Target: "/data/a.parquet", AgeSeconds: 1, Site: "parquet", Stack: parquet}
	}
	inherited := sock(11, 5, 1)
	inherited.Inherited, inherited.Comm, inherited.Exe = true, "sh", "/bin/sh"
	return &report.Report{
		Schema: report.Schema, Mode: "run",
		Leaks: []report.Leak{sock(10, 5, 2), sock(10, 6, 2), sock(10, 7, 0.01), file(8), file(9), inherited,
			{PID: 10, Comm: "python3", FD: -1, TID: 12, Kind: "thread", Internal: true, Site: "rt", Stack: connect[:1]}},
		// A site as the session builds it: the headline skips libc.
		Sites: []report.Site{{Key: "connect", Count: 3, Headline: connect[1], Stack: connect}},
		Processes: []report.Process{
			{PID: 10, PPID: 1, Comm: "python3", Exe: "/usr/bin/python3", Exited: true},
			{PID: 11, PPID: 10, Comm: "sh", Exe: "/bin/sh", Exited: true},
			{PID: 12, PPID: 10, Comm: "sh", Exe: "/bin/sh", Exited: true},
		},
	}
}

func mustSupp(t *testing.T, text string) *Suppressions {
	t.Helper()
	s, err := ParseSuppressions(strings.NewReader(text), "supp")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustBudget(t *testing.T, spec ...string) Budget {
	t.Helper()
	b, err := ParseBudget(spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func siteCount(r *report.Report, key string) (count, uncounted int) {
	for _, s := range r.Sites {
		if s.Key == key {
			return s.Count, s.Uncounted
		}
	}
	return -1, -1
}

func TestApply(t *testing.T) {
	base := &Baseline{Schema: BaselineSchema, Sites: []BaselineSite{{Key: "connect", Count: 2}}}
	tests := []struct {
		name          string
		p             Policy
		counted       int
		connect, parq [2]int // count, uncounted
		exceeded      bool
		reasons       map[string]int
	}{
		{name: "no policy", counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "count inherited", p: Policy{CountInherited: true}, counted: 6, connect: [2]int{4, 0}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1}},
		{name: "min age", p: Policy{MinAge: 100 * time.Millisecond}, counted: 4, connect: [2]int{2, 1}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1, "min_age": 1}},
		{name: "suppress by function", p: Policy{Suppressions: mustSupp(t, "fun:db.*\n")}, counted: 2, connect: [2]int{0, 3}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1, "suppressed": 3}},
		{name: "suppress by file and kind", p: Policy{Suppressions: mustSupp(t, "# vendored\nfile:*/vendor/* kind:file\n")}, counted: 3, connect: [2]int{3, 0}, parq: [2]int{0, 2},
			reasons: map[string]int{"internal": 1, "inherited": 1, "suppressed": 2}},
		{name: "all terms must match", p: Policy{Suppressions: mustSupp(t, "file:*/vendor/* kind:socket\n")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "suppress by target", p: Policy{Suppressions: mustSupp(t, "target:tcp *:5432\n")}, counted: 2, connect: [2]int{0, 3}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1, "suppressed": 3}},
		{name: "baseline: grown site counts its growth, new site counts", p: Policy{Baseline: base}, counted: 3, connect: [2]int{1, 2}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1, "baseline": 2}},
		{name: "total budget ok", p: Policy{Budget: mustBudget(t, "5")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "total budget exceeded", p: Policy{Budget: mustBudget(t, "4")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0}, exceeded: true,
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "kind budget exceeded", p: Policy{Budget: mustBudget(t, "socket=2,file=5")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0}, exceeded: true,
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "kind budget ok", p: Policy{Budget: mustBudget(t, "socket=3", "file=2")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "every-site budget exceeded", p: Policy{Budget: mustBudget(t, "site=2")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0}, exceeded: true,
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "a named site's own limit wins", p: Policy{Budget: mustBudget(t, "site=2,site:db.connect=3")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "site by file:line", p: Policy{Budget: mustBudget(t, "site:*/io.py:17=1")}, counted: 5, connect: [2]int{3, 0}, parq: [2]int{2, 0}, exceeded: true,
			reasons: map[string]int{"internal": 1, "inherited": 1}},
		{name: "suppressed leaks do not count against the budget", p: Policy{Budget: mustBudget(t, "socket=0"), Suppressions: mustSupp(t, "kind:socket")}, counted: 2, connect: [2]int{0, 3}, parq: [2]int{2, 0},
			reasons: map[string]int{"internal": 1, "inherited": 1, "suppressed": 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fixture()
			tc.p.Apply(r)
			counted, reasons := 0, map[string]int{}
			for _, l := range r.Leaks {
				if l.Counted {
					counted++
					if l.NotCounted != "" {
						t.Errorf("fd %d counted with reason %q", l.FD, l.NotCounted)
					}
				} else {
					reasons[l.NotCounted]++
				}
				if (l.NotCounted == report.NotCountedSuppressed) != (l.SuppressedBy != "") {
					t.Errorf("fd %d: not_counted %q, suppressed_by %q", l.FD, l.NotCounted, l.SuppressedBy)
				}
			}
			if counted != tc.counted {
				t.Errorf("counted %d, want %d", counted, tc.counted)
			}
			if len(reasons) != len(tc.reasons) {
				t.Errorf("reasons %v, want %v", reasons, tc.reasons)
			}
			for k, n := range tc.reasons {
				if reasons[k] != n {
					t.Errorf("reasons %v, want %v", reasons, tc.reasons)
				}
			}
			if c, u := siteCount(r, "connect"); [2]int{c, u} != tc.connect {
				t.Errorf("connect site count, uncounted = %d, %d; want %v", c, u, tc.connect)
			}
			if c, u := siteCount(r, "parquet"); [2]int{c, u} != tc.parq {
				t.Errorf("parquet site count, uncounted = %d, %d; want %v", c, u, tc.parq)
			}
			sum := 0
			for _, p := range r.Processes {
				sum += p.Leaked
			}
			if sum != tc.counted {
				t.Errorf("processes leaked %d in all, want %d", sum, tc.counted)
			}
			if tc.p.Budget.Set() != (r.Budget != nil) {
				t.Fatalf("budget set %v, verdict %+v", tc.p.Budget.Set(), r.Budget)
			}
			if r.Budget != nil && r.Budget.Exceeded != tc.exceeded {
				t.Errorf("exceeded %v, want %v: %+v", r.Budget.Exceeded, tc.exceeded, r.Budget)
			}
		})
	}
}

func TestApplyTwiceIsStable(t *testing.T) {
	r := fixture()
	p := Policy{MinAge: time.Second, Suppressions: mustSupp(t, "kind:file"), Budget: mustBudget(t, "1")}
	p.Apply(r)
	first := summary(r)
	(&Policy{}).Apply(r)
	if got := summary(r); got != "5 counted, 2 sites" {
		t.Errorf("an empty policy re-applied should count everything again: %s", got)
	}
	p.Apply(r)
	if got := summary(r); got != first {
		t.Errorf("re-applied: %s, first: %s", got, first)
	}
	if r.Budget == nil || !r.Budget.Exceeded || r.Budget.Leaked != 2 {
		t.Errorf("budget %+v, want 2 leaked over 1", r.Budget)
	}
}

func summary(r *report.Report) string {
	n := 0
	for _, s := range r.Sites {
		n += s.Count
	}
	return fmt.Sprintf("%d counted, %d sites", n, len(r.Sites))
}

func TestExecutables(t *testing.T) {
	r := fixture()
	(&Policy{CountInherited: true}).Apply(r)
	if len(r.Executables) != 2 {
		t.Fatalf("executables %+v", r.Executables)
	}
	py, sh := r.Executables[0], r.Executables[1]
	if py.Exe != "/usr/bin/python3" || py.Processes != 1 || py.Leaked != 5 || py.Sites != 2 || py.Kinds["socket"] != 3 {
		t.Errorf("python3: %+v", py)
	}
	if sh.Exe != "/bin/sh" || sh.Processes != 2 || sh.Leaked != 1 || sh.Sites != 1 {
		t.Errorf("sh: %+v", sh)
	}
}

func TestBaselineState(t *testing.T) {
	r := fixture()
	(&Policy{Baseline: &Baseline{Sites: []BaselineSite{{Key: "connect", Count: 5}}}}).Apply(r)
	for _, s := range r.Sites {
		want := map[string]string{"connect": "unchanged", "parquet": "new"}[s.Key]
		if s.BaselineState != want {
			t.Errorf("site %s: baseline state %q, want %q", s.Key, s.BaselineState, want)
		}
	}
}

func TestBaselineRoundTrip(t *testing.T) {
	r := fixture()
	(&Policy{Suppressions: mustSupp(t, "kind:file")}).Apply(r)
	b := BaselineOf(r)
	var buf bytes.Buffer
	if err := WriteBaseline(&buf, b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBaseline(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Suppressed files stay out of the baseline: unsuppressed, they would be new.
	if len(got.Sites) != 1 || got.Sites[0].Key != "connect" || got.Sites[0].Count != 3 || got.Sites[0].Where != "db.connect (/srv/app/db.py:42)" {
		t.Fatalf("baseline %+v", got.Sites)
	}
	// Judged against its own baseline, a run counts nothing.
	r2 := fixture()
	(&Policy{Baseline: got, Suppressions: mustSupp(t, "kind:file")}).Apply(r2)
	if s := summary(r2); s != "0 counted, 2 sites" {
		t.Errorf("against its own baseline: %s", s)
	}
	// A baseline taken from a report that was itself baselined keeps the old count.
	if b2 := BaselineOf(r2); len(b2.Sites) != 1 || b2.Sites[0].Count != 3 {
		t.Errorf("baseline of a baselined report: %+v", b2.Sites)
	}
}

func TestReadBaselineFromReport(t *testing.T) {
	// A report written before leaks had "counted": its sites' counts are the baseline.
	doc := `{"schema":"leaktrace.report/v1","mode":"run","exit_code":0,"started":"","duration_seconds":0,"complete":true,
"events":{"received":0,"lost":0},"leaks":[{"pid":1,"comm":"x","fd":3,"kind":"file","target":"/a","age_seconds":1,"inherited":false,"site":"k","stack":[]}],
"sites":[{"key":"k","count":1,"headline":{"address":0},"kinds":{"file":1},"targets":[],"exes":[],"stack":[]}],"processes":[]}`
	b, err := ReadBaseline(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Sites) != 1 || b.Sites[0].Key != "k" || b.Sites[0].Count != 1 {
		t.Errorf("baseline %+v", b.Sites)
	}
}

func TestReadBaselineErrors(t *testing.T) {
	for _, doc := range []string{``, `[]`, `{"schema":"other"}`, `{"schema":"leaktrace.baseline/v1","sites":[{"key":"a","count":-1}]}`,
		`{"schema":"leaktrace.report/v9"}`, `{"schema":"leaktrace.baseline/v1","sites":{}}`} {
		if _, err := ReadBaseline(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: no error", doc)
		}
	}
}

func TestParseSuppressionsErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"fun:a\nfunction:b\n", `supp:2: unknown field "function"`},
		{"\n\n# c\n  db.connect  \n", `supp:4: "db.connect" is not FIELD:PATTERN`},
		{"kind:sockets", `supp:1: unknown kind "sockets"`},
		{"fun:a target:", `supp:1: target: has an empty pattern`},
	}
	for _, tc := range tests {
		_, err := ParseSuppressions(strings.NewReader(tc.text), "supp")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want prefix %q", tc.text, err, tc.want)
		}
	}
	s := mustSupp(t, "# only comments\n\n   # and blanks\nkind:sock* # trailing comment\n")
	if s.Len() != 1 {
		t.Errorf("%d rules, want 1", s.Len())
	}
	l := report.Leak{Kind: "socket"}
	if got := s.Match(&l); got != "supp:4: kind:sock*" {
		t.Errorf("SuppressedBy %q", got)
	}
}

func TestParseBudget(t *testing.T) {
	b := mustBudget(t, "socket=0, file=5", "site=3,site:db.connect=1", "total=7")
	if b.Total != 7 || b.Kinds["socket"] != 0 || b.Kinds["file"] != 5 || b.EverySite != 3 || len(b.Sites) != 1 || b.Sites[0] != (SiteLimit{"db.connect", 1}) {
		t.Errorf("parsed %+v", b)
	}
	if (Budget{}).Set() || !mustBudget(t, "socket=0").Set() {
		t.Error("Set is wrong")
	}
	if b := mustBudget(t, "-1"); b.Set() {
		t.Errorf("--budget -1 sets a limit: %+v", b)
	}
	if b := mustBudget(t, "total=-1,socket=0"); b.HasTotal || b.Kinds["socket"] != 0 || !b.Set() {
		t.Errorf("total=-1: %+v", b)
	}
	for _, bad := range []string{"-2", "x", "sockets=1", "file=", "file=-2", "site:=1", "=3"} {
		if _, err := ParseBudget([]string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// An empty item or a limit given twice is refused: which one was meant
// cannot be guessed (a later one used to win silently).
func TestParseBudgetRefusesEmptyAndDuplicate(t *testing.T) {
	for _, bad := range [][]string{
		{""}, {" "}, {"5,"}, {",socket=0"}, {"5,,socket=0"},
		{"5", "-1"}, {"5,total=7"}, {"10", "total=7"}, {"socket=0", "socket=1"}, {"file=1,file=1"},
		{"site=1,site=2"}, {"site:db.connect=1", "site:db.connect=2"},
	} {
		if b, err := ParseBudget(bad); err == nil {
			t.Errorf("--budget %q: accepted as %+v", bad, b)
		}
	}
	// Distinct limits are fine, in one flag or several.
	if _, err := ParseBudget([]string{"5,socket=0", "site=2", "site:db.connect=1", "site:io.*=3"}); err != nil {
		t.Errorf("distinct limits refused: %v", err)
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a?c", "abc", true},
		{"*/vendor/*", "/srv/app/vendor/io.py", true}, {"github.com/*.connect", "github.com/x/db.connect", true},
		{"a*b*c", "aXbYbZc", true}, {"a*b", "acbd", false}, {"", "a", false}, {"abc", "ab", false},
	}
	for _, tc := range tests {
		if got := match(tc.p, tc.s); got != tc.want {
			t.Errorf("match(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

// TestSuppressionsDoc keeps docs/suppressions.md true: its example parses and
// its rules match what they say they match.
func TestSuppressionsDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/suppressions.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 2 {
		t.Fatal("want the example and the error message blocks")
	}
	s, err := ParseSuppressions(strings.NewReader(blocks[0][1]), "leaktrace.supp")
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	if s.Len() != 4 {
		t.Errorf("%d rules, want 4", s.Len())
	}
	pg := report.Leak{Kind: "socket", Target: "tcp 10.0.0.5:41822 -> 10.0.0.9:5432"}
	if by := s.Match(&pg); !strings.HasPrefix(by, "leaktrace.supp:13:") {
		t.Errorf("the database socket rule: matched by %q", by)
	}
	// The error shown is the one given for line 7 saying "function:".
	bad := strings.Repeat("\n", 6) + "function:db.connect\n"
	_, err = ParseSuppressions(strings.NewReader(bad), "leaktrace.supp")
	if err == nil || !strings.Contains(blocks[1][1], err.Error()) {
		t.Errorf("the documented error is not what leaktrace says: %v", err)
	}
}

// A budget on a report that lost events is never "ok": 250 real leaks with
// 213 counted passed "budget 245" before. It is judged on its counts only
// when the user opts in.
func TestBudgetOnIncompleteReport(t *testing.T) {
	for _, tc := range []struct {
		complete, allow bool
		wantIncomplete  bool
	}{{true, false, false}, {false, false, true}, {false, true, false}} {
		r := fixture()
		r.Complete = tc.complete
		p := &Policy{Budget: mustBudget(t, "1000"), AllowIncomplete: tc.allow}
		p.Apply(r)
		if r.Budget == nil || r.Budget.Incomplete != tc.wantIncomplete || r.Budget.Exceeded {
			t.Errorf("complete=%v allow=%v: verdict %+v, want incomplete=%v", tc.complete, tc.allow, r.Budget, tc.wantIncomplete)
		}
	}
	// No budget, no verdict: an incomplete report alone does not fail.
	r := fixture()
	r.Complete = false
	(&Policy{}).Apply(r)
	if r.Budget != nil {
		t.Errorf("verdict without a budget: %+v", r.Budget)
	}
}
