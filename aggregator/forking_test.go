package aggregator_test

import (
	"testing"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
)

// Stacks of the synthetic postmaster.
const (
	stAccept event.StackID = iota + 1
	stFork
	stEpoll
	stSignalfd
	stFile
	stBgThread
	stOwnThread
)

// postmaster replays a forking server as PostgreSQL's postmaster runs one
// under `pgbench -C`: per connection it accepts, forks a backend and closes
// its own copy; the backend makes an epoll fd, a signalfd, a file and a
// thread, serves, and exits holding all of them (the kernel closes them);
// the postmaster reaps it. Then held backends are forked and stay, one more
// exits and is never reaped, and the postmaster starts a thread of its own.
// It returns the events and the pids of the held backends.
func postmaster(conns, held int) ([]event.Event, []uint32) {
	const pm = P
	var evs []event.Event
	t := uint64(1 * sec)
	tick := func() uint64 { t += 1_000_000; return t }
	backend := func(pid uint32, exits bool) {
		evs = append(evs,
			open(pm, pm, files(pm), 9, event.KindSocket, "tcp 127.0.0.1:5432->127.0.0.1:40000", stAccept, tick()),
			fork(pm, pid, stFork, tick()),
			closeOwn(pm, 9, tick()),
			open(pid, pid, files(pid), 10, event.KindEpoll, "anon_inode:[eventpoll]", stEpoll, tick()),
			open(pid, pid, files(pid), 11, event.KindSignalfd, "anon_inode:[signalfd]", stSignalfd, tick()),
			open(pid, pid, files(pid), 12, event.KindFile, "/var/lib/postgresql/base/1/1259", stFile, tick()),
			thread(pid, pid+50_000, stBgThread, tick()),
		)
		if exits {
			evs = append(evs, dies(pid, tick()), reap(pm, pid, tick()))
		}
	}
	for i := 0; i < conns; i++ {
		backend(uint32(1000+i), true)
	}
	var stay []uint32
	for i := 0; i < held; i++ {
		pid := uint32(5000 + i)
		backend(pid, false)
		stay = append(stay, pid)
	}
	backend(6000, false)
	evs = append(evs, dies(6000, tick()), thread(pm, pm+1, stOwnThread, tick()))
	return evs, stay
}

func seedPostmaster(a *aggregator.Aggregator) {
	a.Seed(P, 1, "postgres", "/usr/lib/postgresql/15/bin/postgres", []aggregator.SeedFD{
		{FD: 0, Kind: event.KindFile, Target: "/dev/null"},
		{FD: 1, Kind: event.KindFile, Target: "/dev/null"},
		{FD: 2, Kind: event.KindFile, Target: "/dev/null"},
		{FD: 6, Kind: event.KindSocket, Target: "tcp 127.0.0.1:5432"},
	}, []uint32{P}, 0)
}

// TestAttachExitedProcessesAreNotLeaks: attached to a forking server, what
// exited backends held at their exit is summed apart and never counted; the
// connections held backends still have are leaks of theirs (handed over by
// the postmaster, with the accept stack); the unreaped backend and the
// postmaster's own thread count. run, fed the same events, keeps "held at
// exit = leaked".
func TestAttachExitedProcessesAreNotLeaks(t *testing.T) {
	const conns, held = 40, 3
	evs, stay := postmaster(conns, held)
	now := evs[len(evs)-1].Time + 20*sec

	a := aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: 10 * sec})
	seedPostmaster(a)
	apply(a, evs...)
	got := map[event.StackID]int{}
	for _, l := range a.Leaks(now) {
		got[l.Stack]++
		switch {
		case l.Stack == stAccept:
			if l.Inherited || !l.HandedOver || l.Reason != aggregator.ReasonOutstanding || l.Kind != event.KindSocket {
				t.Errorf("held connection: %+v, want a handed-over outstanding socket", l)
			}
		case l.PID >= 1000 && l.PID < 5000:
			t.Errorf("exited backend's handle counted as a leak: %+v", l)
		}
	}
	// Each held backend: its connection, epoll, signalfd, file and thread.
	want := map[event.StackID]int{stAccept: held, stEpoll: held, stSignalfd: held, stFile: held, stBgThread: held,
		stFork: 1, stOwnThread: 1}
	if !equalCounts(got, want) {
		t.Errorf("leaks by stack = %v, want %v", got, want)
	}
	for _, pid := range stay {
		if !a.Alive(pid) {
			t.Errorf("held backend %d not alive", pid)
		}
	}

	h := a.Held()
	if h.Processes != conns+1 || h.Handles != (conns+1)*5 {
		t.Errorf("held at exit: %d processes, %d handles; want %d, %d", h.Processes, h.Handles, conns+1, (conns+1)*5)
	}
	for _, st := range []event.StackID{stAccept, stEpoll, stSignalfd, stFile, stBgThread} {
		if s := h.Stacks[st]; s == nil || s.Count != conns+1 {
			t.Errorf("held at exit from stack %d: %+v, want %d", st, s, conns+1)
		}
	}
	if s := h.Stacks[stAccept]; s == nil || s.Inherited != conns+1 || s.Kinds[event.KindSocket] != conns+1 {
		t.Errorf("held connections: %+v, want %d inherited sockets", s, conns+1)
	}
	for _, p := range a.Processes() {
		if p.PID >= 1000 && p.PID < 5000 && (p.HeldAtExit != 5 || p.Leaked != 0) {
			t.Errorf("backend %+v: want 5 held at exit, 0 leaked", p)
		}
	}

	// Young: right after the last event, nothing is old enough yet.
	if n := len(a.Leaks(evs[len(evs)-1].Time)); n != 0 {
		t.Errorf("%d leaks before min-age", n)
	}
	if n := len(a.Young(evs[len(evs)-1].Time)); n != held*5+2 {
		t.Errorf("Young() = %d handles, want %d", n, held*5+2)
	}
	if n := len(a.Young(now)); n != 0 {
		t.Errorf("Young() long after = %d, want 0", n)
	}

	r := aggregator.New(aggregator.Config{})
	seedPostmaster(r)
	apply(r, evs...)
	byReason := map[string]int{}
	for _, l := range r.Leaks(now) {
		byReason[l.Reason]++
	}
	// run: every exited backend's epoll, signalfd, file and (inherited)
	// connection are leaks, its thread too; the unreaped backend 6000's as well.
	if byReason[aggregator.ReasonOpenAtExit] != (conns+1)*4 || byReason[aggregator.ReasonThreadAtExit] != conns+1 {
		t.Errorf("run leaks by reason = %v, want %d open at exit, %d threads", byReason, (conns+1)*4, conns+1)
	}
	if h := r.Held(); h.Handles != 0 {
		t.Errorf("run: %d handles held at exit, want 0 (they are leaks)", h.Handles)
	}
}

func equalCounts(a, b map[event.StackID]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
