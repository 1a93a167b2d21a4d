package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/procfs"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/session"
	"github.com/leaktrace/leaktrace/tracer"
)

// fakeSession is a session without BPF: a real aggregator fed synthetic
// events, with the agent's onEvent called under the same lock as With, as
// the session does.
type fakeSession struct {
	a        *Agent
	mu       sync.Mutex
	g        *aggregator.Aggregator
	sites    map[event.StackID]session.SiteInfo
	counters tracer.Counters
	// symbolized counts Site calls per stack; underLock those made while
	// the agent's lock was held.
	symbolized map[event.StackID]int
	underLock  int
}

func (f *fakeSession) Add(int) error { return nil }
func (f *fakeSession) Run(stop <-chan struct{}) error {
	<-stop
	return nil
}
func (f *fakeSession) Close() error { return nil }
func (f *fakeSession) With(fn func(g *aggregator.Aggregator)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.g)
}
func (f *fakeSession) Site(id event.StackID) session.SiteInfo {
	if f.a.mu.TryLock() {
		f.a.mu.Unlock()
	} else {
		f.underLock++
	}
	f.symbolized[id]++
	return f.sites[id]
}
func (f *fakeSession) SampleGrowth()                      {}
func (f *fakeSession) Counters() (tracer.Counters, error) { return f.counters, nil }
func (f *fakeSession) BadRecords() uint64                 { return 2 }
func (f *fakeSession) StacksDropped() uint64              { return 3 }
func (f *fakeSession) Report(session.ReportInfo) (*report.Report, error) {
	return &report.Report{}, nil
}

// apply folds events in as the session does: aggregator first, then onEvent.
func (f *fakeSession) apply(evs ...event.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range evs {
		f.g.Apply(&evs[i])
		f.a.onEvent(&evs[i])
	}
}

// withFake gives a a fake session whose stacks 1..9 symbolize to fn1..fn9,
// and a fake /proc where every pid in limits has that RLIMIT_NOFILE.
func withFake(t *testing.T, a *Agent, limits map[uint32]uint64) *fakeSession {
	t.Helper()
	f := &fakeSession{a: a, g: aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: uint64(a.cfg.Thresholds.MinAge)}),
		sites: make(map[event.StackID]session.SiteInfo), symbolized: make(map[event.StackID]int)}
	for id := event.StackID(1); id < 10; id++ {
		f.sites[id] = session.SiteInfo{Key: fmt.Sprintf("site%d", id), Headline: report.Frame{Function: fmt.Sprintf("fn%d", id), File: "srv.c", Line: int(id)}}
	}
	a.sess = f
	root := t.TempDir()
	for pid, lim := range limits {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("Limit                     Soft Limit           Hard Limit           Units\nMax open files            %d                 %d                 files\n", lim, lim)
		if err := os.WriteFile(filepath.Join(dir, "limits"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/usr/bin/srv", filepath.Join(dir, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	old := procfs.Root
	procfs.Root = root
	t.Cleanup(func() { procfs.Root = old })
	return f
}

// Event shapes, as the tracer's decoder produces them. Times are on the
// kernel's monotonic clock, which the agent judges min_age against.
func tableOf(pid uint32) uint64 { return 0xffff_8880_0000_0000 | uint64(pid)<<12 }

func openEv(pid uint32, fd int32, kind event.Kind, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.FDOpen, Time: t, PID: pid, TID: pid, Files: tableOf(pid), Syscall: 257,
		FD: fd, FD2: -1, Kind: kind, Stack: stack}
}

func closeEv(pid uint32, fd int32, t uint64) event.Event {
	return event.Event{Type: event.FDClose, Time: t, PID: pid, TID: pid, Files: tableOf(pid), Syscall: 3, FD: fd, FD2: -1}
}

func threadEv(pid, tid uint32, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.TaskNew, Time: t, PID: pid, TID: pid, Files: tableOf(pid), FD: -1, FD2: -1,
		Kind: event.KindThread, Stack: stack, ChildPID: pid, ChildTID: tid, ChildFiles: tableOf(pid), IsThread: true, PPID: pid}
}

func forkEv(parent, child uint32, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.TaskNew, Time: t, PID: parent, TID: parent, Files: tableOf(parent), FD: -1, FD2: -1,
		Kind: event.KindProcess, Stack: stack, ChildPID: child, ChildTID: child, ChildFiles: tableOf(child), PPID: parent}
}

func exitEv(pid uint32, t uint64) event.Event {
	return event.Event{Type: event.TaskExit, Time: t, PID: pid, TID: pid, FD: -1, FD2: -1, ChildPID: pid, ChildTID: pid, GroupDead: true}
}

// opens is n fds from fd first on, all from stack.
func opens(pid uint32, first int32, n int, kind event.Kind, stack event.StackID, t uint64) []event.Event {
	var out []event.Event
	for fd := first; fd < first+int32(n); fd++ {
		out = append(out, openEv(pid, fd, kind, stack, t))
	}
	return out
}

func TestObserveCountsUntrackedFromTheLiveSet(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.MaxProcesses = 2
	a, _ := testAgent(t, cfg)
	f := withFake(t, a, map[uint32]uint64{101: 1024, 102: 1024, 103: 1024})
	if err := a.seed(cfg.Filters); err != nil { // 103 is past the limit
		t.Fatal(err)
	}
	mono := monotonicNow()
	for _, pid := range []uint32{101, 102, 103} {
		f.apply(openEv(pid, 3, event.KindFile, 1, mono))
	}
	now := time.Now()
	check := func(what string, snap *Snapshot, tracked []uint32, untracked int) {
		t.Helper()
		var got []uint32
		for _, p := range snap.Processes {
			got = append(got, p.PID)
		}
		if fmt.Sprint(got) != fmt.Sprint(tracked) || snap.Untracked != untracked {
			t.Errorf("%s: tracked %v, untracked %d; want %v, %d", what, got, snap.Untracked, tracked, untracked)
		}
	}
	// 103 was past the limit at start-up and now shows up: counted once.
	check("three live, room for two", a.observe(now, true), []uint32{101, 102}, 1)
	check("scraped again", a.observe(now, false), []uint32{101, 102}, 1)

	f.apply(exitEv(101, mono+1))
	a.forgetExited()
	check("one exited", a.observe(now.Add(time.Second), true), []uint32{102, 103}, 0)
	if snap := a.observe(now.Add(time.Second), false); snap.Exited != 1 {
		t.Errorf("exited = %d, want 1", snap.Exited)
	}
}
