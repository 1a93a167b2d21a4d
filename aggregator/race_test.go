package aggregator_test

import (
	"slices"
	"testing"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
)

// Records of syscalls on different threads reach the aggregator in the order
// their exits were committed, not the order the kernel changed the table in.
// These cases are the interleavings the property test (integration) found.

// at sets a syscall's enter and exit times.
func at(e event.Event, enter, exit uint64) event.Event {
	e.Enter, e.Time = enter, exit
	return e
}

func liveFDs(a *aggregator.Aggregator, pid uint32) []int32 {
	var out []int32
	for _, h := range a.Live(pid) {
		out = append(out, h.FD)
	}
	return out
}

func TestRacingReleases(t *testing.T) {
	const T1, T2 = P + 1, P + 2
	fl := files(P)
	start := []event.Event{thread(P, T1, 9, 1), thread(P, T2, 9, 2), openFile(P, 5, "/old", 1, 3)}
	cases := []struct {
		name   string
		events []event.Event
		want   []int32
		target string // of fd 5, when open
	}{{
		// T1's close of 5 freed the number, T2's open took it, and T2's
		// record came first: the close is the old handle's.
		name: "reuse record before close record",
		events: []event.Event{
			at(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 15, 20),
			at(closeFD(P, T1, fl, 5, 0), 10, 30),
		},
		want: []int32{5}, target: "/new",
	}, {
		name: "close record first, then reuse",
		events: []event.Event{
			at(closeFD(P, T1, fl, 5, 0), 10, 12),
			at(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 15, 20),
		},
		want: []int32{5}, target: "/new",
	}, {
		// T2's open installed 5, T1 closed it (a stale fd number), and T1's
		// record came before T2's: 5 is closed.
		name: "close of an fd whose open record is in flight",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5), // the old one, in order
			at(closeFD(P, T1, fl, 5, 0), 16, 18),
			at(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 15, 20),
		},
		want: nil,
	}, {
		// An orphan close long before an open of the same number says
		// nothing about it.
		name: "stale orphan close",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5),
			at(closeFD(P, T1, fl, 5, 0), 6, 7),
			at(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 15, 20),
		},
		want: []int32{5}, target: "/new",
	}, {
		name: "close_range record after a reuse",
		events: []event.Event{
			at(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 15, 20),
			at(closeRange(P, 3, 10, 0, 0), 10, 30),
		},
		want: []int32{5}, target: "/new",
	}, {
		// dup2 onto an open fd closes it itself: no release is in flight,
		// so a later close is the new handle's.
		name: "dup2 onto an open fd",
		events: []event.Event{
			at(openFile(P, 7, "/seven", 3, 0), 4, 5),
			at(dup2(P, 5, 7, 4, 0), 6, 7),
			at(closeOwn(P, 5, 0), 8, 9),
		},
		want: []int32{7},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := aggregator.New(aggregator.Config{})
			apply(a, start...)
			apply(a, c.events...)
			checkLiveFDs(t, a, c.want, c.target)
		})
	}
}

// A release we never see (lost, or made by a syscall we do not follow) must
// not swallow a later close of the handle that replaced it.
func TestSupersededReleaseNeverSeen(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	apply(a,
		at(openFile(P, 5, "/old", 1, 0), 1, 2),
		at(openFile(P, 5, "/new", 2, 0), 10, 11), // /old's release was never seen
		at(closeOwn(P, 5, 0), 20, 21),            // entered after /new existed: it is /new's
	)
	if got := liveFDs(a, P); len(got) != 0 {
		t.Fatalf("live fds %v, want none", got)
	}
}

// The property test's interleaving: a slow close (io_uring teardown) of fd 5
// entered before a thread reused 5, released it, and another thread reused
// it again; the slow close's record comes last and must not close the
// newest handle.
func TestSlowCloseAfterTwoReuses(t *testing.T) {
	const T1, T2, T3 = P + 1, P + 2, P + 3
	fl := files(P)
	a := aggregator.New(aggregator.Config{})
	apply(a, thread(P, T1, 9, 1), thread(P, T2, 9, 2), thread(P, T3, 9, 3),
		at(open(P, P, fl, 5, event.KindIOUring, "anon_inode:[io_uring]", 1, 0), 4, 5),
		at(open(P, T1, fl, 5, event.KindPidfd, "anon_inode:[pidfd]", 2, 0), 22, 27),
		at(closeFD(P, T1, fl, 5, 0), 39, 41),
		at(open(P, T2, fl, 5, event.KindEventfd, "anon_inode:[eventfd]", 3, 0), 135, 140),
		at(closeOwn(P, 5, 0), 10, 611), // entered before the pidfd existed
	)
	live := a.Live(P)
	if len(live) != 1 || live[0].Kind != event.KindEventfd {
		t.Fatalf("live %+v, want the eventfd at 5", live)
	}
}

// checked is an open whose enter time is unknown (the agent's exit-only
// hooks) and whose exit found the fd installed; gone found it closed.
func checked(e event.Event, exit uint64) event.Event {
	e.Enter, e.Time = 0, exit
	e.Flags |= event.FlagChecked
	return e
}

// withFile sets the file the kernel found at the record's fd.
func withFile(e event.Event, file uint64) event.Event {
	e.File = file
	return e
}

func gone(e event.Event, exit uint64) event.Event {
	e = checked(e, exit)
	e.Flags |= event.FlagGone
	return e
}

// The same interleavings with opens that carry no enter time: the open's
// exit checked the fd in the kernel, and a close's enter time orders it.
func TestRacingReleasesExitOnly(t *testing.T) {
	const T1, T2 = P + 1, P + 2
	fl := files(P)
	start := []event.Event{thread(P, T1, 9, 1), thread(P, T2, 9, 2), openFile(P, 5, "/old", 1, 3)}
	cases := []struct {
		name   string
		events []event.Event
		want   []int32
	}{{
		name: "reuse record before close record",
		events: []event.Event{
			checked(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 20),
			at(closeFD(P, T1, fl, 5, 0), 10, 30),
		},
		want: []int32{5},
	}, {
		// The close began before the open returned with 5 installed: it
		// released /old (a close removes the fd first thing).
		name: "close record first, began before the open returned",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5), // /old, in order
			at(closeFD(P, T1, fl, 5, 0), 12, 25),
			checked(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 20),
		},
		want: []int32{5},
	}, {
		// The close began before the open returned, but the file it
		// found at 5 is the open's: it entered between the install and
		// the open's exit (a double close hitting a fresh fd), and
		// released the new handle.
		name: "close record first, began before the open returned, found its file",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5),
			withFile(at(closeFD(P, T1, fl, 5, 0), 12, 25), 0xf1),
			withFile(checked(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 20), 0xf1),
		},
		want: nil,
	}, {
		name: "close record first, began before the open returned, found another file",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5),
			withFile(at(closeFD(P, T1, fl, 5, 0), 12, 25), 0xf0),
			withFile(checked(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 20), 0xf1),
		},
		want: []int32{5},
	}, {
		// The close began after the open returned: it released the new
		// handle, whose record came second.
		name: "close record first, began after the open returned",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5),
			at(closeFD(P, T1, fl, 5, 0), 21, 25),
			checked(open(P, T2, fl, 5, event.KindFile, "/new", 2, 0), 20),
		},
		want: nil,
	}, {
		// The open's exit found 5 closed already: whatever the order of
		// the records, nothing is open.
		name: "gone, close record first",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5),
			at(closeFD(P, T1, fl, 5, 0), 16, 18),
			gone(open(P, T2, fl, 5, event.KindFile, "", 2, 0), 20),
		},
		want: nil,
	}, {
		name: "gone, close record second",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5),
			gone(open(P, T2, fl, 5, event.KindFile, "", 2, 0), 20),
			at(closeFD(P, T1, fl, 5, 0), 16, 22),
			checked(open(P, T2, fl, 5, event.KindFile, "/later", 2, 0), 40),
		},
		want: []int32{5},
	}, {
		// T2 opened 5 and closed it; T1's open then got 5 again. T1's
		// record (a stack Go knew: sent at once) came before T2's (a copy,
		// slower to make), and T2's close last: T2's open is the older
		// handle, already released, and its close must not release T1's.
		name: "older open record after a newer one, its close last",
		events: []event.Event{
			at(closeOwn(P, 5, 0), 4, 5),
			checked(open(P, T1, fl, 5, event.KindFile, "/new", 2, 0), 20),
			checked(open(P, T2, fl, 5, event.KindEventfd, "", 2, 0), 10),
			at(closeFD(P, T2, fl, 5, 0), 15, 30),
		},
		want: []int32{5},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := aggregator.New(aggregator.Config{})
			apply(a, start...)
			apply(a, c.events...)
			checkLiveFDs(t, a, c.want, "")
		})
	}
}

// checkLiveFDs checks P's live fds and, when target is set, fd 5's target.
func checkLiveFDs(t *testing.T, a *aggregator.Aggregator, want []int32, target string) {
	t.Helper()
	if got := liveFDs(a, P); !slices.Equal(got, want) {
		t.Fatalf("live fds %v, want %v", got, want)
	}
	if target == "" {
		return
	}
	for _, h := range a.Live(P) {
		if h.FD == 5 && h.Target != target {
			t.Errorf("fd 5 is %q, want %q", h.Target, target)
		}
	}
}
