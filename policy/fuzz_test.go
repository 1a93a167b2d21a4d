package policy

import (
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

func FuzzParseSuppressions(f *testing.F) {
	f.Add("# comment\nfun:db.connect\nkind:socket target:tcp *:5432*\n")
	f.Add("file:*/vendor/*:12 exe:*python*\n")
	f.Add("bogus\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSuppressions(strings.NewReader(text), "f")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") && !strings.HasPrefix(err.Error(), "reading f") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error does not name the file on one line: %q", err)
			}
			return
		}
		l := report.Leak{Kind: "file", Target: text, Stack: []report.Frame{{Function: text, File: text}}}
		if by := s.Match(&l); by != "" && !strings.HasPrefix(by, "f:") {
			t.Fatalf("SuppressedBy %q", by)
		}
	})
}

func FuzzParseBudget(f *testing.F) {
	f.Add("5")
	f.Add("socket=0,file=5")
	f.Add("site=2,site:db.connect=1,total=3")
	f.Add("mapped=512MiB,socket=0")
	f.Fuzz(func(t *testing.T, spec string) {
		b, err := ParseBudget([]string{spec})
		if err != nil {
			return
		}
		if b.Total < 0 || b.EverySite < 0 {
			t.Fatalf("negative limit from %q: %+v", spec, b)
		}
		for _, n := range b.Kinds {
			if n < 0 {
				t.Fatalf("negative kind limit from %q", spec)
			}
		}
		r := fixture()
		(&Policy{Budget: b}).Apply(r)
	})
}

func FuzzReadBaseline(f *testing.F) {
	f.Add(`{"schema":"leaktrace.baseline/v1","sites":[{"key":"connect","count":2}]}`)
	f.Add(`{"schema":"leaktrace.report/v1","leaks":[],"sites":[{"key":"k","count":1}],"processes":[]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		b, err := ReadBaseline(strings.NewReader(doc))
		if err != nil {
			return
		}
		for _, s := range b.Sites {
			if s.Count < 0 {
				t.Fatalf("negative count from %q", doc)
			}
		}
		r := fixture()
		(&Policy{Baseline: b}).Apply(r)
		for _, s := range r.Sites {
			if s.Count < 0 || s.Uncounted < 0 {
				t.Fatalf("site %+v", s)
			}
		}
	})
}
