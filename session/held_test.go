package session

import (
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
)

// A forking server seen by attach: each worker accepts nothing itself, the
// server accepts, forks and closes; the worker opens a file and exits. The
// report's held-at-exit section sums the workers by site; what a live worker
// holds younger than --min-age is counted as not judged, not as a leak.
func TestReportHeldAtExitAndYoung(t *testing.T) {
	s := testSession(aggregator.ModeAttach, 0)
	s.opts.MinAge = 10 * time.Second
	s.agg = aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: uint64(s.opts.MinAge)})
	accept := s.keep(stackAt("/srv/acceptor", 1))
	work := s.keep(stackAt("/srv/worker", 2))
	const server = 100
	at := uint64(1)
	worker := func(pid uint32, exits bool) {
		s.agg.Apply(&event.Event{Type: event.FDOpen, PID: server, TID: server, Files: server, Time: at, FD: 5, FD2: -1, Kind: event.KindSocket, Stack: accept})
		s.agg.Apply(&event.Event{Type: event.TaskNew, PID: server, TID: server, Files: server, Time: at + 1, ChildPID: pid, ChildTID: pid, ChildFiles: uint64(pid), Kind: event.KindProcess})
		s.closeFD(server, 5, at+2)
		s.openFrom(pid, 6, work, at+3)
		if exits {
			s.agg.Apply(&event.Event{Type: event.TaskExit, PID: pid, TID: pid, ChildTID: pid, GroupDead: true, Time: at + 4, Autoreap: true})
		}
		at += 10
	}
	for pid := uint32(200); pid < 210; pid++ {
		worker(pid, true)
	}
	worker(300, false)

	h := heldAtExit(s.agg.Held(), s.symbolize)
	if h.Processes != 10 || h.Handles != 20 || h.Inherited != 10 || h.Kinds["socket"] != 10 || h.Kinds["file"] != 10 || len(h.Sites) != 2 {
		t.Fatalf("held at exit = %+v", h)
	}
	for _, site := range h.Sites {
		if site.Count != 10 || site.Key == "" {
			t.Errorf("held site %+v, want 10 handles with a key", site)
		}
	}
	// Right after: the live worker's socket (handed over) and file are young.
	y := s.young(at, ReportInfo{Mode: "attach"}, s.symbolize)
	if y.Handles != 2 || y.Kinds["socket"] != 1 || y.Kinds["file"] != 1 || y.MinAgeSeconds != 10 {
		t.Errorf("young = %+v, want the live worker's socket and file", y)
	}
	if n := len(s.agg.Leaks(at)); n != 0 {
		t.Errorf("%d leaks before min-age", n)
	}
	if y := s.young(at+uint64(time.Minute), ReportInfo{Mode: "attach"}, s.symbolize); y.Handles != 0 {
		t.Errorf("young a minute later = %+v", y)
	}
}
