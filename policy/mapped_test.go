package policy

import (
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"4096": 4096, "0": 0, "512MiB": 512 << 20, "1GiB": 1 << 30, "64K": 64 << 10, "2G": 2 << 30,
		"3 MiB": 3 << 20, "10B": 10, "1TiB": 1 << 40, " 7KiB ": 7 << 10,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "+5", "1.5GiB", "5MB", "1e6", "x", "99999999999TiB", "18446744073709551616"} {
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, no error", bad, n)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSize(%q): error of several lines", bad)
		}
	}
}

func TestParseBudgetMapped(t *testing.T) {
	b := mustBudget(t, "mapped=512MiB,socket=0")
	if !b.HasMapped || b.Mapped != 512<<20 || !b.Set() || b.HasTotal {
		t.Errorf("parsed %+v", b)
	}
	for _, bad := range [][]string{{"mapped="}, {"mapped=lots"}, {"mapped=1GiB", "mapped=2GiB"}, {"mapping=3"}} {
		if _, err := ParseBudget(bad); err == nil {
			t.Errorf("--budget %q: no error", bad)
		}
	}
	_, err := ParseBudget([]string{"mapping=3"})
	if err == nil || !strings.Contains(err.Error(), "mapped=SIZE") {
		t.Errorf("mapping=N should point to mapped=SIZE: %v", err)
	}
}

// Mapped bytes are judged apart from leaks: a budget of 0 leaks with
// mappings passes, and mapped= fails on bytes alone.
func TestBudgetMapped(t *testing.T) {
	for _, tc := range []struct {
		bytes    uint64
		budget   string
		exceeded bool
	}{{1 << 20, "mapped=1MiB", false}, {1<<20 + 4096, "mapped=1MiB", true}, {0, "mapped=0", false}} {
		r := fixture()
		r.Sites, r.Leaks = nil, nil
		r.Mapped = &report.Mapped{Bytes: tc.bytes}
		p := &Policy{Budget: mustBudget(t, tc.budget)}
		p.Apply(r)
		if r.Budget == nil || r.Budget.Mapped == nil || r.Budget.Exceeded != tc.exceeded || r.Budget.Mapped.Bytes != tc.bytes || r.Budget.Leaked != 0 {
			t.Errorf("%d bytes, %s: verdict %+v", tc.bytes, tc.budget, r.Budget)
		}
	}
	// No mapping seen: nothing mapped, within any limit.
	r := fixture()
	r.Sites, r.Leaks = nil, nil
	(&Policy{Budget: mustBudget(t, "mapped=0")}).Apply(r)
	if r.Budget.Exceeded {
		t.Errorf("no Mapped exceeded mapped=0: %+v", r.Budget)
	}
}

func FuzzParseSize(f *testing.F) {
	f.Add("512MiB")
	f.Add("4096")
	f.Add("1 GiB")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of several lines: %q", err)
			}
			return
		}
		// What parsed is a whole number of its unit, written back the same.
		if n2, err := ParseSize(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(s), "KMGTiB"))); err == nil && n2 > n {
			t.Fatalf("%q = %d, less than its number %d", s, n, n2)
		}
	})
}
