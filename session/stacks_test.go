package session

import (
	"slices"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/symbolize"
)

func TestStackTableLookupNeverAdds(t *testing.T) {
	st := NewStackTable(0)
	a := []symbolize.Location{{Module: "/bin/a", Vaddr: 0x10}}
	b := []symbolize.Location{{Module: "/bin/a", Vaddr: 0x20}}
	id, _ := st.Intern(a)
	if got, ok := st.Lookup(a); !ok || got != id {
		t.Fatalf("Lookup(a) = %d, %v; want %d, true", got, ok, id)
	}
	if got, ok := st.Lookup(b); ok || got != 0 {
		t.Fatalf("Lookup(b) = %d, %v; want 0, false", got, ok)
	}
	if st.Len() != 1 {
		t.Fatalf("Len = %d after a lookup miss, want 1", st.Len())
	}
}

func stackAt(module string, vaddr uint64) []symbolize.Location {
	return []symbolize.Location{{Module: module, Vaddr: vaddr, Addr: vaddr}}
}

func TestStackTableEvict(t *testing.T) {
	st := NewStackTable(0)
	held, _ := st.Intern(stackAt("/bin/a", 1))
	idle, _ := st.Intern(stackAt("/bin/a", 2))
	hot, _ := st.Intern(stackAt("/bin/a", 3))
	inUse := func(id event.StackID) bool { return id == held }
	t0 := time.Unix(1000, 0)
	const span = time.Minute

	// Every stack was used since the last pass (none yet): idle from now.
	if gone := st.Evict(t0, span, inUse); len(gone) != 0 {
		t.Fatalf("evicted %v at the first pass", gone)
	}
	// hot is used between every pass; idle has been idle for span at the second.
	for i, want := range [][]event.StackID{nil, {idle}, nil} {
		st.Lookup(stackAt("/bin/a", 3))
		if gone := st.Evict(t0.Add(time.Duration(i+1)*span/2), span, inUse); !slices.Equal(gone, want) {
			t.Fatalf("pass %d evicted %v, want %v", i+1, gone, want)
		}
	}
	if st.Get(idle) != nil || st.Get(held) == nil || st.Get(hot) == nil || st.Len() != 2 {
		t.Fatalf("after eviction: idle %v, held %v, hot %v, len %d", st.Get(idle), st.Get(held), st.Get(hot), st.Len())
	}
	// The evicted stack comes back under an id never given before.
	again, _ := st.Intern(stackAt("/bin/a", 2))
	if again == idle || again == held || again == hot {
		t.Fatalf("stack re-interned as %d: an id already given (%d, %d, %d)", again, held, idle, hot)
	}
}

// testSession is a session without a kernel: a real aggregator and stack
// table, events applied by hand.
func testSession(mode aggregator.Mode, maxStacks int) *Session {
	return &Session{opts: Options{Mode: mode, MaxStacks: maxStacks},
		agg:    aggregator.New(aggregator.Config{Mode: mode}),
		cache:  symbolize.NewCache(4),
		stacks: NewStackTable(maxStacks),
		growth: make(map[event.StackID]int), low: make(map[event.StackID]int)}
}

func (s *Session) openFrom(pid uint32, fd int32, stack event.StackID, at uint64) {
	s.agg.Apply(&event.Event{Type: event.FDOpen, PID: pid, TID: pid, Files: uint64(pid), Time: at, FD: fd, FD2: -1, Kind: event.KindFile, Stack: stack})
}

func (s *Session) closeFD(pid uint32, fd int32, at uint64) {
	s.agg.Apply(&event.Event{Type: event.FDClose, PID: pid, TID: pid, Files: uint64(pid), Time: at, FD: fd, FD2: -1})
}

func TestCompactFreesRoomForNewSites(t *testing.T) {
	s := testSession(aggregator.ModeAttach, 2)
	held := s.keep(stackAt("/srv/held", 1))
	s.openFrom(7, 3, held, 1)
	closed := s.keep(stackAt("/srv/closed", 1))
	s.openFrom(7, 4, closed, 2)
	s.SampleGrowth()
	s.closeFD(7, 4, 3)
	s.SampleGrowth()
	if id := s.keep(stackAt("/srv/late", 1)); id != 0 || s.StacksDropped() != 1 {
		t.Fatalf("a third stack past max_stacks 2 kept as %d, dropped %d", id, s.StacksDropped())
	}

	t0 := time.Unix(1000, 0)
	const idle = time.Minute
	if gone := s.Compact(t0, idle); len(gone) != 0 {
		t.Fatalf("evicted %v: both were used since the last pass", gone)
	}
	// held's handle stays open for as long as any pass looks.
	if gone := s.Compact(t0.Add(100*idle), idle); !slices.Equal(gone, []event.StackID{closed}) {
		t.Fatalf("evicted %v, want only the closed stack %d", gone, closed)
	}
	if _, ok := s.growth[closed]; ok {
		t.Error("growth state of an evicted stack kept")
	}

	late := s.keep(stackAt("/srv/late", 1))
	if late == 0 || late == closed || late == held {
		t.Fatalf("after eviction the new site got id %d (held %d, evicted %d)", late, held, closed)
	}
	s.openFrom(7, 4, late, 4)
	// What reports and metrics read: each live handle's id names its own stack.
	for id, module := range map[event.StackID]string{held: "/srv/held", late: "/srv/late"} {
		if got := s.Site(id).Headline.Module; got != module {
			t.Errorf("stack %d is now sited at %q, want %q", id, got, module)
		}
	}
	for _, h := range s.agg.Live(7) {
		if s.stacks.Get(h.Stack) == nil {
			t.Errorf("live fd %d lost its stack %d", h.FD, h.Stack)
		}
	}
	if got := s.Site(closed); got.Key != "" {
		t.Errorf("the evicted id still names a site: %+v", got)
	}
}

func TestCompactKeepsStacksOfUntakenLeaks(t *testing.T) {
	s := testSession(aggregator.ModeAttach, 0)
	id := s.keep(stackAt("/srv/leaky", 1))
	s.openFrom(9, 5, id, 1)
	s.agg.Apply(&event.Event{Type: event.TaskExit, PID: 9, TID: 9, ChildTID: 9, GroupDead: true, Time: 2})
	t0 := time.Unix(1000, 0)
	s.Compact(t0, time.Minute)
	if gone := s.Compact(t0.Add(time.Hour), time.Minute); len(gone) != 0 {
		t.Fatalf("evicted %v while its leak is still to be reported", gone)
	}
	s.agg.TakeExited()
	if gone := s.Compact(t0.Add(2*time.Hour), time.Minute); !slices.Equal(gone, []event.StackID{id}) {
		t.Fatalf("evicted %v once the leak was taken, want [%d]", gone, id)
	}
}

func TestCompactNeverInRunMode(t *testing.T) {
	s := testSession(aggregator.ModeRun, 0)
	id := s.keep(stackAt("/srv/a", 1))
	t0 := time.Unix(1000, 0)
	s.Compact(t0, time.Minute)
	if gone := s.Compact(t0.Add(time.Hour), time.Minute); len(gone) != 0 || s.stacks.Get(id) == nil {
		t.Fatalf("run mode evicted %v", gone)
	}
}
