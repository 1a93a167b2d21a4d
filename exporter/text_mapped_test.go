package exporter

import (
	"bytes"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

func TestTextMapped(t *testing.T) {
	line := report.Frame{Function: "grow", File: "/srv/app.py", Line: 12, Module: "python"}
	r := &report.Report{Mode: "run", Complete: true, Leaks: []report.Leak{}, Sites: []report.Site{},
		Mapped: &report.Mapped{Bytes: 640 << 20, Mappings: 11, Sites: []report.MappedSite{
			{Key: "a", Bytes: 600 << 20, Mappings: 10, Headline: line, Targets: []string{"[anon]"}, Stack: []report.Frame{{Function: "mmap", Module: "libc.so.6"}, line}},
			{Key: "b", Bytes: 40 << 20, Mappings: 1, Headline: report.Frame{Function: "main", File: "m.c", Line: 3}, Targets: []string{"[heap]"}},
		}},
		Budget: &report.Budget{Limit: -1, Exceeded: true, Mapped: &report.BudgetBytes{Limit: 512 << 20, Bytes: 640 << 20, Exceeded: true}},
	}
	var out bytes.Buffer
	if err := WriteText(&out, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"memory left mapped at exit (mmap, brk; not counted as leaks): 640.0 MiB in 11 ranges from 2 sites",
		"600.0 MiB in 10 ranges from grow (/srv/app.py:12)",
		"  target: [anon]",
		"40.0 MiB in 1 range from main (m.c:3)",
		"leaktrace: no leaks (",
		"; 640.0 MiB left mapped",
		"mapped=512.0 MiB: exceeded (640.0 MiB mapped)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("text lacks %q:\n%s", want, got)
		}
	}
}

func TestBytesText(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 4096: "4.0 KiB", 1536 << 20: "1.5 GiB", 1 << 40: "1.0 TiB"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", n, got, want)
		}
	}
}
