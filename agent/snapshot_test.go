package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/procfs"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/session"
	"github.com/leaktrace/leaktrace/symbolize"
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
	// stacks is a real table holding ids 1..9, for Compact.
	stacks *session.StackTable
	// settled is what the next TakeSettled returns.
	settled map[event.StackID]uint64
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
func (f *fakeSession) SampleGrowth() {}
func (f *fakeSession) Compact(now time.Time, idle time.Duration) []event.StackID {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.g.StacksInUse()
	return f.stacks.Evict(now, idle, func(id event.StackID) bool {
		_, ok := in[id]
		return ok
	})
}
func (f *fakeSession) Counters() (tracer.Counters, error) { return f.counters, nil }
func (f *fakeSession) TakeSettled() (map[event.StackID]uint64, error) {
	s := f.settled
	f.settled = nil
	return s, nil
}
func (f *fakeSession) BadRecords() uint64    { return 2 }
func (f *fakeSession) StacksDropped() uint64 { return 3 }
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
		sites: make(map[event.StackID]session.SiteInfo), symbolized: make(map[event.StackID]int), stacks: session.NewStackTable(0)}
	for id := event.StackID(1); id < 10; id++ {
		if got, _ := f.stacks.Intern([]symbolize.Location{{Module: "/usr/bin/srv", Vaddr: uint64(id)}}); got != id {
			t.Fatalf("fake stack %d interned as %d", id, got)
		}
		f.sites[id] = session.SiteInfo{Key: fmt.Sprintf("site%d", id), Headline: report.Frame{Function: fmt.Sprintf("fn%d", id), File: "srv.c", Line: int(id)}}
	}
	a.sess = f
	a.agg = f.g
	a.incidentHold.Store(int64(a.cfg.Thresholds.FDFailureHold))
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
	if snap := a.observe(now.Add(time.Second), false); snap.Exited != 1 || snap.HeldAtExit != 1 {
		t.Errorf("exited = %d, held at exit %d; want 1, 1 (its file)", snap.Exited, snap.HeldAtExit)
	}
	if got := scrape(t, NewCollector(a))["leaktrace_handles_held_at_exit_total{}"]; got != 1 {
		t.Errorf("leaktrace_handles_held_at_exit_total = %v, want 1", got)
	}
}

func TestObserveSiteKindIsStableAndSymbolizedOutsideTheLock(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Thresholds.MinAge = time.Second
	a, _ := testAgent(t, cfg)
	f := withFake(t, a, map[uint32]uint64{200: 1024})
	mono := monotonicNow()
	old := mono - uint64(10*time.Second)
	// Young handles only: no suspects yet, the kinds are known all the same.
	f.apply(openEv(200, 3, event.KindFile, 1, mono), threadEv(200, 201, 2, mono), forkEv(200, 210, 3, mono))
	// Stack 4 made a socket long ago; a dup from it (kind unknown) changes nothing.
	f.apply(openEv(200, 4, event.KindSocket, 4, old))
	dup := openEv(200, 5, event.KindUnknown, 4, old)
	dup.Syscall, dup.FD2 = 32, 4
	f.apply(dup)

	kinds := func(snap *Snapshot) map[string]string {
		out := make(map[string]string)
		for _, s := range snap.Sites {
			out[s.Key] = s.Kind
		}
		return out
	}
	want := map[string]string{"site1": "file", "site2": "thread", "site3": "process", "site4": "socket"}
	now := time.Now()
	if got := kinds(a.observe(now, true)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kinds = %v, want %v", got, want)
	}
	// A later handle of another kind from stack 1 must not relabel its series.
	f.apply(openEv(200, 6, event.KindPipe, 1, mono))
	if got := kinds(a.observe(now.Add(time.Second), true)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after a pipe from site1: kinds = %v, want %v", got, want)
	}
	if got := kinds(a.observe(now.Add(time.Second), false)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("scraped: kinds = %v, want %v", got, want)
	}
	for id, n := range f.symbolized {
		if n != 1 {
			t.Errorf("stack %d symbolized %d times, want once", id, n)
		}
	}
	if len(f.symbolized) != 4 || f.underLock != 0 {
		t.Errorf("symbolized %v, %d of them under the agent's lock; want stacks 1-4, none under it", f.symbolized, f.underLock)
	}
	snap := a.observe(now.Add(time.Second), false)
	if snap.Sites[0].Key != "site4" || snap.Sites[0].Suspects != 2 {
		t.Errorf("first site = %+v, want site4 with 2 suspects (the socket and its dup)", snap.Sites[0])
	}
}

// TestObserveSettledBySite: a site whose handles are all settled in the
// kernel is listed, its count adds up across samples, and it is not dropped
// as idle while it keeps settling handles.
func TestObserveSettledBySite(t *testing.T) {
	a, _ := testAgent(t, DefaultConfig())
	f := withFake(t, a, map[uint32]uint64{200: 1024})
	f.apply(openEv(200, 3, event.KindFile, 1, monotonicNow()))
	now := time.Now()
	settledOf := func(snap *Snapshot, key string) (uint64, bool) {
		for _, s := range snap.Sites {
			if s.Key == key {
				return s.Settled, true
			}
		}
		return 0, false
	}
	f.settled = map[event.StackID]uint64{5: 40, 1: 2}
	snap := a.observe(now, true)
	if n, ok := settledOf(snap, "site5"); !ok || n != 40 {
		t.Fatalf("site5 settled %d (listed %v), want 40", n, ok)
	}
	if n, _ := settledOf(snap, "site1"); n != 2 {
		t.Errorf("site1 settled %d, want 2", n)
	}
	f.settled = map[event.StackID]uint64{5: 60}
	if n, _ := settledOf(a.observe(now.Add(time.Second), true), "site5"); n != 100 {
		t.Errorf("site5 settled %d after a second sample, want 100", n)
	}
	// A scrape (no sample) takes nothing from the kernel and changes nothing.
	if n, _ := settledOf(a.observe(now.Add(time.Second), false), "site5"); n != 100 {
		t.Errorf("site5 settled %d after a scrape, want 100", n)
	}
	// Quiet since: kept for a growth window, then forgotten as idle.
	span := a.cfg.Thresholds.GrowthWindow
	if _, ok := settledOf(a.observe(now.Add(span/2), true), "site5"); !ok {
		t.Error("site5 forgotten within a growth window of its last settled handle")
	}
	if _, ok := settledOf(a.observe(now.Add(2*span), true), "site5"); ok {
		t.Error("site5 still listed two growth windows after its last settled handle")
	}
}

// TestOneSeriesPerSiteKey: the same code reached in two process images is
// two stacks with one key (a shell's every child made them by the
// thousand): one site, whose counts add, and one series per metric (the
// pedantic registry fails on two series with the same labels).
func TestOneSeriesPerSiteKey(t *testing.T) {
	a, _ := testAgent(t, DefaultConfig())
	f := withFake(t, a, map[uint32]uint64{300: 1024, 301: 1024})
	f.sites[2] = f.sites[1]
	mono := monotonicNow()
	f.apply(opens(300, 3, 4, event.KindFile, 1, mono)...)
	f.apply(opens(301, 3, 6, event.KindFile, 2, mono)...)
	f.settled = map[event.StackID]uint64{1: 10, 2: 5}
	a.tick(time.Now())
	snap := a.observe(time.Now(), false)
	var of []SiteStat
	for _, s := range snap.Sites {
		if s.Key == "site1" {
			of = append(of, s)
		}
	}
	if len(of) != 1 || of[0].Outstanding != 10 || of[0].Settled != 15 || of[0].ID != 1 || of[0].Kind != "file" {
		t.Fatalf("site1's stats %+v, want one with 10 outstanding, 15 settled, id 1", of)
	}
	got := scrape(t, NewCollector(a))
	const series = `leaktrace_site_outstanding_handles{function=fn1,kind=file,location=srv.c:1,site=site1}`
	if got[series] != 10 {
		t.Errorf("%s = %v, want 10", series, got[series])
	}
}

func TestRulesThresholds(t *testing.T) {
	th := DefaultConfig().Thresholds
	hold := th.FDFailureHold
	now := time.Now()
	tests := []struct {
		name string
		p    ProcessStat
		s    *SiteStat
		want []string // name/level of each alert
	}{
		{"under warn", ProcessStat{Usage: aggregator.Usage{Open: 69}, Limit: 100}, nil, nil},
		{"warn", ProcessStat{Usage: aggregator.Usage{Open: 70}, Limit: 100}, nil, []string{AlertFDUsage + "/warning"}},
		{"error", ProcessStat{Usage: aggregator.Usage{Open: 85}, Limit: 100}, nil, []string{AlertFDUsage + "/error"}},
		{"critical", ProcessStat{Usage: aggregator.Usage{Open: 99}, Limit: 100}, nil, []string{AlertFDUsage + "/critical"}},
		{"no limit known", ProcessStat{Usage: aggregator.Usage{Open: 99}}, nil, nil},
		{"unlimited", ProcessStat{Usage: aggregator.Usage{Open: 99}, Limit: ^uint64(0)}, nil, nil},
		{"failed within hold", ProcessStat{Limit: 100, LastFail: now.Add(-hold), LastErrno: 24}, nil, []string{AlertFDExhausted + "/critical"}},
		{"failed before hold", ProcessStat{Limit: 100, LastFail: now.Add(-hold - time.Second), LastErrno: 24}, nil, nil},
		{"zombie", ProcessStat{Limit: 100, Zombies: th.ZombiesMin}, nil, []string{AlertChildLeak + "/warning"}},
		{"site grew", ProcessStat{}, &SiteStat{Key: "k", Kind: "file", Growth: th.GrowthMin, WindowFull: true}, []string{AlertHandleGrowth + "/warning"}},
		{"site grew, window not full", ProcessStat{}, &SiteStat{Key: "k", Kind: "file", Growth: th.GrowthMin}, nil},
		{"site grew too little", ProcessStat{}, &SiteStat{Key: "k", Kind: "file", Growth: th.GrowthMin - 1, WindowFull: true}, nil},
		{"threads grew", ProcessStat{}, &SiteStat{Key: "k", Kind: "thread", Growth: th.GrowthMin, WindowFull: true}, []string{AlertThreadLeak + "/warning"}},
		{"children grew", ProcessStat{}, &SiteStat{Key: "k", Kind: "process", Growth: th.GrowthMin, WindowFull: true}, []string{AlertChildLeak + "/warning"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := testAgent(t, DefaultConfig())
			withFake(t, a, nil)
			tc.p.PID, tc.p.Comm = 300, "srv"
			snap := &Snapshot{Processes: []ProcessStat{tc.p}}
			if tc.s != nil {
				snap.Sites = []SiteStat{*tc.s}
			}
			var got []string
			for _, al := range a.rules(snap, now) {
				got = append(got, al.Name+"/"+al.Level)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("alerts %v, want %v", got, tc.want)
			}
		})
	}
}

// firing names the alerts firing now, with their subject.
func firing(a *Agent) string {
	var out []string
	for _, al := range a.Firing() {
		out = append(out, al.Name+"/"+al.Level+"/"+al.Labels["pid"]+al.Labels["site"])
	}
	return strings.Join(out, " ")
}

func TestAlertsFireAndResolve(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Thresholds.GrowthWindow = time.Minute
	cfg.Thresholds.GrowthMin = 5
	a, _ := testAgent(t, cfg)
	f := withFake(t, a, map[uint32]uint64{400: 100})
	mono := monotonicNow()
	t0 := time.Now()
	steps := []struct {
		name   string
		at     time.Duration
		events []event.Event
		fail   bool // an EMFILE at this step
		want   string
	}{
		{"quiet", 0, append(opens(400, 3, 10, event.KindFile, 1, mono), threadEv(400, 401, 2, mono)), false, ""},
		{"fds at 80%", 30 * time.Second, opens(400, 13, 70, event.KindFile, 1, mono), false,
			AlertFDUsage + "/warning/400"},
		{"fds at 96%, threads grew", time.Minute, append(opens(400, 83, 16, event.KindFile, 1, mono),
			threadEv(400, 402, 2, mono), threadEv(400, 403, 2, mono), threadEv(400, 404, 2, mono), threadEv(400, 405, 2, mono), threadEv(400, 406, 2, mono)),
			true, AlertFDExhausted + "/critical/400 " + AlertFDUsage + "/critical/400 " + AlertHandleGrowth + "/warning/site1 " + AlertThreadLeak + "/warning/site2"},
		{"fds closed, threads steady", 2 * time.Minute, func() []event.Event {
			var out []event.Event
			for fd := int32(3); fd < 99; fd++ {
				out = append(out, closeEv(400, fd, mono))
			}
			return out
		}(), false, AlertFDExhausted + "/critical/400"},
		{"failure held past", 2*time.Minute + cfg.Thresholds.FDFailureHold, nil, false, ""},
	}
	for _, st := range steps {
		f.apply(st.events...)
		now := t0.Add(st.at)
		if st.fail {
			a.fdFailure(fdFailure{pid: 400, comm: "srv", errno: 24, at: now})
		}
		a.tick(now)
		if got := firing(a); got != st.want {
			t.Errorf("%s: firing %q, want %q", st.name, got, st.want)
		}
	}
	for _, al := range a.Firing() {
		t.Errorf("still firing: %+v", al)
	}
}

// TestDashboardListsShortLivedSites: a site whose handles all settle in the
// kernel holds none, yet the dashboard lists it with its rate: a connection
// made and closed per request is what a pool that does not pool looks like.
func TestDashboardListsShortLivedSites(t *testing.T) {
	a, _ := testAgent(t, DefaultConfig())
	f := withFake(t, a, map[uint32]uint64{200: 1024})
	f.apply(openEv(200, 3, event.KindFile, 1, monotonicNow()))
	now := time.Now()
	f.settled = map[event.StackID]uint64{5: 100}
	a.tick(now)
	f.settled = map[event.StackID]uint64{5: 400}
	a.tick(now.Add(2 * time.Second))
	var m dashModel
	if err := json.Unmarshal(get(t, a.Handler("/metrics", "test"), "/api/dashboard").Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, s := range m.Sites {
		if s.Key == "site5" {
			if s.Settled != 500 || s.SettledRate != 200 || s.Outstanding != 0 {
				t.Errorf("site5 %+v: want 500 settled at 200/s, none outstanding", s)
			}
			return
		}
	}
	t.Fatalf("sites %+v: site5, busy with short-lived handles, not listed", m.Sites)
}
