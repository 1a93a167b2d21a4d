package exporter

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// liveSites: 30 sites; site i has i+1 outstanding, and the three with i%10 == 3
// grow by i.
func liveSites() []report.Site {
	var sites []report.Site
	for i := range 30 {
		s := report.Site{
			Key:         fmt.Sprintf("site%02d", i),
			Count:       i,
			Outstanding: i + 1,
			Kinds:       map[string]int{"socket": i + 1},
			Headline: report.Frame{
				Function: fmt.Sprintf("github.com/acme/service/internal/storage.(*Pool).acquireConnection%d", i),
				File:     "/home/builder/src/github.com/acme/service/internal/storage/pool.go",
				Line:     100 + i,
			},
		}
		if i%10 == 3 {
			s.Growth = i
		}
		sites = append(sites, s)
	}
	return sites
}

func TestWriteLive(t *testing.T) {
	tests := []struct {
		name         string
		v            LiveView
		wantLines    int      // lines printed, header included
		inOrder      []string // after escapes are stripped
		header       []string // on the header line, escapes kept
		headerAbsent []string
		absent       []string
	}{
		{
			name: "80x10 with lost events",
			v: LiveView{PID: 4242, Comm: "api", Elapsed: 754*time.Second + 300*time.Millisecond,
				Received: 90000, Lost: 3, Open: 57, Sites: liveSites(), Width: 80, Height: 10, MinAge: 10 * time.Second, Color: true},
			wantLines: 9, // the last row is left to the cursor
			inOrder: []string{
				"OLD: open over --min-age 10s",
				"OPEN    OLD  GROWTH  KINDS",
				"   24     23     +23  socket=24         storage.(*Pool).acquireConn… pool.go:123\n",
				"   14     13     +13  socket=14",
				"    4      3      +3  socket=4",
				"   30     29       0  socket=30",
				"  … 25 more sites",
			},
			header: []string{"pid 4242 (api)", "12m34s", "open 57", "events 90000", ansiRed + "LOST 3, incomplete" + ansiReset},
		},
		{
			name:         "no lost events: not highlighted",
			v:            LiveView{PID: 1, Comm: "init", Open: 3, Received: 10, Sites: liveSites()[:2], Width: 100, Height: 24},
			wantLines:    5,
			inOrder:      []string{"leaktrace attach  pid 1 (init)  0s  open 3  events 10  lost 0", "    2      1       0  socket=2", "    1      0       0  socket=1"},
			header:       []string{"lost 0"},
			headerAbsent: []string{"\x1b[1", "LOST"},
		},
		{
			name:         "narrow terminal keeps pid and lost",
			v:            LiveView{PID: 4242, Comm: "api", Elapsed: time.Hour, Received: 123456789, Lost: 12, Open: 1000, Sites: liveSites(), Width: 40, Height: 6},
			wantLines:    5,
			header:       []string{"pid 4242 (api)", "LOST 12, incomplete"},
			headerAbsent: []string{"events", "leaktrace"},
			inOrder:      []string{"   24     23     +23  socket=24", "  … 29 more sites"},
			absent:       []string{"pool.go"},
		},
		{
			name:      "site column shortens the path before the function",
			v:         LiveView{PID: 7, Sites: liveSites()[3:4], Width: 150, Height: 24},
			wantLines: 4,
			inOrder:   []string{"github.com/acme/service/internal/storage.(*Pool).acquireConnection3 pool.go:103"},
			absent:    []string{"/home/builder"},
		},
		{
			name:      "mapped memory in the header",
			v:         LiveView{PID: 7, Comm: "x", Open: 3, Mapped: 14 << 20, MappedGrowth: 3 << 20, Width: 120, Height: 24},
			wantLines: 4,
			header:    []string{"mapped 14.0 MiB (+3.0 MiB)"},
		},
		{
			name:      "very small screen shows only the header",
			v:         LiveView{PID: 7, Sites: liveSites(), Width: 12, Height: 3},
			wantLines: 1,
			header:    []string{"pid 7"},
		},
		{
			name: "stackless site",
			v: LiveView{PID: 7, Width: 80, Height: 24, Sites: []report.Site{
				{Key: "", Count: 2, Outstanding: 3, Kinds: map[string]int{"pipe": 2}},
				{Key: "k", Count: 5, Kinds: map[string]int{"file": 5}, Headline: report.Frame{Function: "main.open", File: "m.go", Line: 9}},
			}},
			wantLines: 5,
			inOrder:   []string{"    5      5       0  file=5            main.open m.go:9\n", "    3      2       0  pipe=2            (no stack)\n"},
			absent:    []string{"0x0"},
		},
		{
			name:      "nothing yet",
			v:         LiveView{PID: 7, Comm: "x"},
			wantLines: 4,
			inOrder:   []string{"no handles open with a stack yet"},
		},
		{
			// Before min-age passes nothing is OLD: the view says how many
			// are open rather than "no outstanding handles".
			name:      "open but younger than min-age",
			v:         LiveView{PID: 7, Comm: "x", Open: 80, MinAge: 10 * time.Second, Width: 100, Height: 24},
			wantLines: 4,
			inOrder:   []string{"OPEN    OLD  GROWTH  KINDS", "80 open, none for longer than --min-age 10s yet"},
			absent:    []string{"no handles"},
		},
		{
			name:         "NO_COLOR: lost events not highlighted",
			v:            LiveView{PID: 7, Lost: 5, Width: 100, Height: 24},
			wantLines:    4,
			header:       []string{"LOST 5, incomplete"},
			headerAbsent: []string{"\x1b["},
		},
		{
			name:      "hostile comm is escaped",
			v:         LiveView{PID: 7, Comm: "a\x1b[2Jb", Width: 80, Height: 24},
			wantLines: 4,
			header:    []string{`pid 7 (a\x1b[2Jb)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteLive(&b, tc.v); err != nil {
				t.Fatal(err)
			}
			out, ok := strings.CutPrefix(b.String(), "\x1b[H\x1b[2J")
			if !ok {
				t.Fatalf("frame does not start with clear-screen and home: %q", b.String())
			}
			width, height := tc.v.Width, tc.v.Height
			if width == 0 {
				width, height = 80, 24
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != tc.wantLines || len(lines) > height-1 {
				t.Errorf("%d lines, want %d (height %d)", len(lines), tc.wantLines, height)
			}
			plain := ansiEscape.ReplaceAllString(out, "")
			for _, l := range strings.Split(plain, "\n") {
				if n := runeLen(l); n > width {
					t.Errorf("line of %d columns, width %d: %q", n, width, l)
				}
			}
			if strings.Contains(plain, "\x1b") {
				t.Errorf("raw escape left after known sequences were stripped: %q", plain)
			}
			for _, want := range tc.header {
				if !strings.Contains(lines[0], want) {
					t.Errorf("header %q lacks %q", lines[0], want)
				}
			}
			for _, bad := range tc.headerAbsent {
				if strings.Contains(lines[0], bad) {
					t.Errorf("header %q has %q", lines[0], bad)
				}
			}
			for _, bad := range tc.absent {
				if strings.Contains(plain, bad) {
					t.Errorf("output has %q", bad)
				}
			}
			rest := plain
			for _, want := range tc.inOrder {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("missing or out of order: %q", want)
					continue
				}
				rest = rest[i+len(want):]
			}
			if t.Failed() {
				t.Logf("output:\n%s", plain)
			}
		})
	}
}

// TestWriteLiveFitsEverySize sweeps terminal sizes: no line ever overflows and the
// frame never reaches the last row.
func TestWriteLiveFitsEverySize(t *testing.T) {
	sites := liveSites()
	for width := 1; width <= 120; width += 7 {
		for height := 1; height <= 40; height += 3 {
			var b strings.Builder
			v := LiveView{PID: 123456, Comm: "python3", Elapsed: 99 * time.Hour, Received: 1 << 40, Lost: 1 << 20,
				Open: 65536, Sites: sites, Width: width, Height: height}
			if err := WriteLive(&b, v); err != nil {
				t.Fatal(err)
			}
			plain := ansiEscape.ReplaceAllString(strings.TrimPrefix(b.String(), clearHome), "")
			lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n")
			if len(lines) > max(height-1, 1) {
				t.Errorf("%dx%d: %d lines", width, height, len(lines))
			}
			for _, l := range lines {
				if runeLen(l) > width {
					t.Errorf("%dx%d: line of %d columns: %q", width, height, runeLen(l), l)
				}
			}
		}
	}
}

func TestLiveSite(t *testing.T) {
	f := report.Frame{Function: "github.com/acme/svc/db.(*Pool).Get", File: "/src/svc/db/pool.go", Line: 42}
	tests := []struct {
		n    int
		want string
	}{
		{100, "github.com/acme/svc/db.(*Pool).Get /src/svc/db/pool.go:42"},
		{50, "github.com/acme/svc/db.(*Pool).Get pool.go:42"},
		{30, "db.(*Pool).Get pool.go:42"},
		{20, "db.(*Poo… pool.go:42"},
		{12, "db.(*Pool).…"},
		{0, ""},
		{-5, ""},
	}
	for _, tc := range tests {
		if got := liveSite(f, tc.n); got != tc.want {
			t.Errorf("liveSite(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := liveSite(report.Frame{Address: 0xdead, Module: "/lib/libz.so"}, 40); got != "0xdead in libz.so" {
		t.Errorf("unsymbolized: %q", got)
	}
}
