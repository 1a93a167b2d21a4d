package exporter

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

// forkingServerReport: an attach to a forking server. 40 backends exited
// holding their connection, epoll and signalfd (not leaks); a held backend's
// connection, handed over by the postmaster, is a leak; 7 handles are
// younger than --min-age.
func forkingServerReport() *report.Report {
	accept := report.Frame{Address: 0x55d0, Function: "ServerLoop", File: "postmaster.c", Line: 1774, Module: "/usr/lib/postgresql/15/bin/postgres"}
	epoll := report.Frame{Address: 0x55e0, Function: "CreateWaitEventSet", File: "latch.c", Line: 724, Module: "/usr/lib/postgresql/15/bin/postgres"}
	r := &report.Report{
		Schema: report.Schema, Mode: "attach", PID: 900, ExitCode: -1, Started: "2026-12-07T09:00:00Z", Duration: 32,
		Complete: true, Events: report.Events{Received: 5000},
		Leaks: []report.Leak{{PID: 5000, Comm: "postgres", FD: 9, Kind: "socket", Target: "tcp 127.0.0.1:5432->127.0.0.1:40000",
			AgeSeconds: 20, HandedOver: true, Site: "acc", Stack: []report.Frame{accept}, Counted: true}},
		Sites: []report.Site{{Key: "acc", Count: 1, Outstanding: 1, Headline: accept, Kinds: map[string]int{"socket": 1},
			Targets: []string{"tcp 127.0.0.1:5432->127.0.0.1:40000"}, Exes: []string{}, Stack: []report.Frame{accept}}},
		HeldAtExit: &report.HeldAtExit{Processes: 40, Handles: 120, Inherited: 40,
			Kinds: map[string]int{"socket": 40, "epoll": 40, "signalfd": 40},
			Sites: []report.Site{
				{Key: "ep", Count: 80, Headline: epoll, Kinds: map[string]int{"epoll": 40, "signalfd": 40}, Targets: []string{}, Exes: []string{}, Stack: []report.Frame{epoll}},
				{Key: "acc", Count: 40, Headline: accept, Kinds: map[string]int{"socket": 40}, Targets: []string{}, Exes: []string{}, Stack: []report.Frame{accept}},
			}},
		YoungerThanMinAge: &report.Young{Handles: 7, Kinds: map[string]int{"socket": 7}, MinAgeSeconds: 10},
		Processes: []report.Process{
			{PID: 900, PPID: 1, Comm: "postgres"},
			{PID: 1000, PPID: 900, Comm: "postgres", HeldAtExit: 3, Exited: true},
			{PID: 5000, PPID: 900, Comm: "postgres", Leaked: 1},
		},
	}
	return r
}

func TestWriteTextHeldAtExit(t *testing.T) {
	var b strings.Builder
	if err := WriteText(&b, forkingServerReport(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rest := out
	for _, want := range []string{
		"1 leaked socket from ServerLoop (postmaster.c:1774)\n",
		"  in pid 5000\n  of which handed over at fork (the parent closed its copy or exited): 1\n",
		"held at exit (not counted: the kernel released them): 120 handles (epoll=40 signalfd=40 socket=40) in 40 exited processes, 40 inherited at fork\n",
		"  80 handles (epoll=40 signalfd=40) from CreateWaitEventSet (latch.c:724)\n",
		"  40 handles (socket=40) from ServerLoop (postmaster.c:1774)\n",
		"not judged yet: 7 handles (socket=7) younger than --min-age 10s; attach longer or lower --min-age\n",
		"  PID   PPID  COMM      LEAKED  HELD AT EXIT  EXIT\n",
		"  1000  900   postgres  0       3             0\n",
		"leaktrace: 1 leaked handle (socket=1) in 1 site from 1 process; 7 not judged (younger than --min-age 10s); 120 held at exit by 40 exited processes (not leaks)\n",
	} {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Errorf("missing or out of order: %q", want)
			continue
		}
		rest = rest[i+len(want):]
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// A short attach that judged nothing does not say "no leaks" alone.
	r := &report.Report{Mode: "attach", PID: 7, Complete: true,
		YoungerThanMinAge: &report.Young{Handles: 150, Kinds: map[string]int{"file": 150}, MinAgeSeconds: 10}}
	b.Reset()
	if err := WriteText(&b, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "leaktrace: no leaks (0 events, 0 lost, 0 processes); 150 not judged (younger than --min-age 10s)\n") {
		t.Errorf("short attach summary:\n%s", b.String())
	}
}

func TestJSONHeldAtExitRoundTrip(t *testing.T) {
	r := forkingServerReport()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"held_at_exit": {`, `"younger_than_min_age": {`, `"handed_over": true`, `"held_at_exit": 3`, `"min_age_seconds": 10`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.HeldAtExit, r.HeldAtExit) || !reflect.DeepEqual(back.YoungerThanMinAge, r.YoungerThanMinAge) ||
		!back.Leaks[0].HandedOver || back.Processes[1].HeldAtExit != 3 {
		t.Errorf("round trip lost the attach sections: %+v %+v", back.HeldAtExit, back.YoungerThanMinAge)
	}
	// A run report has neither section.
	buf.Reset()
	if err := WriteJSON(&buf, runReport()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "held_at_exit") || strings.Contains(buf.String(), "younger_than_min_age") {
		t.Error("run report carries attach-only sections")
	}
}

func TestWriteLiveHeldAtExit(t *testing.T) {
	r := forkingServerReport()
	var b strings.Builder
	v := LiveView{PID: 900, Comm: "postgres", Received: 5000, Open: 12, Sites: r.Sites, Held: r.HeldAtExit.Sites,
		HeldHandles: r.HeldAtExit.Handles, Young: r.YoungerThanMinAge.Handles, Width: 120, Height: 24}
	if err := WriteLive(&b, v); err != nil {
		t.Fatal(err)
	}
	plain := ansiEscape.ReplaceAllString(strings.TrimPrefix(b.String(), clearHome), "")
	rest := plain
	for _, want := range []string{
		"lost 0  young 7  held at exit 120\n",
		" OPEN  GROWTH  AT EXIT  KINDS             SITE\n",
		"    1       0       40  socket=1          ServerLoop postmaster.c:1774\n",
		"    -       -       80  epoll=40,signal…  CreateWaitEventSet latch.c:724\n",
	} {
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
}
