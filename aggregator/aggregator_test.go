package aggregator_test

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
)

// Syscall numbers (x86-64) the events carry.
const (
	sysClose      = 3
	sysPipe       = 22
	sysDup        = 32
	sysDup2       = 33
	sysSocketpair = 53
	sysWait4      = 61
	sysFcntl      = 72
	sysExitGroup  = 231
	sysOpenat     = 257
	sysDup3       = 292
	sysPipe2      = 293
	sysCloseRange = 436
)

const sec = uint64(1_000_000_000)

// installOf is what the tracer's decoder derives from the syscall.
func installOf(nr uint16) event.Install {
	switch nr {
	case sysPipe, sysPipe2, sysSocketpair:
		return event.InstallPair
	case sysDup, sysFcntl:
		return event.InstallDup
	case sysDup2, sysDup3:
		return event.InstallDupOnto
	}
	return event.InstallNew
}

// P is the traced command in most cases.
const P = 100

// files is the identity (a kernel address) the tests give pid's own fd table.
func files(pid uint32) uint64 { return 0xffff_8880_0000_0000 | uint64(pid)<<12 }

// ---- event constructors: the shapes the tracer's decoder produces ----

func open(pid, tid uint32, fl uint64, fd int32, kind event.Kind, target string, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.FDOpen, Time: t, PID: pid, TID: tid, Files: fl, Syscall: sysOpenat,
		FD: fd, FD2: -1, Kind: kind, Target: target, Stack: stack}
}

// openFile: pid's main thread opens a file in pid's own table.
func openFile(pid uint32, fd int32, target string, stack event.StackID, t uint64) event.Event {
	return open(pid, pid, files(pid), fd, event.KindFile, target, stack, t)
}

func closeFD(pid, tid uint32, fl uint64, fd int32, t uint64) event.Event {
	return event.Event{Type: event.FDClose, Time: t, PID: pid, TID: tid, Files: fl, Syscall: sysClose, FD: fd, FD2: -1}
}

// closeOwn: pid's main thread closes fd in pid's own table.
func closeOwn(pid uint32, fd int32, t uint64) event.Event {
	return closeFD(pid, pid, files(pid), fd, t)
}

// dupFD: newfd := dup*(oldfd). The new fd's own description is left empty on
// purpose: the aggregator must take it from the source.
func dupFD(pid uint32, nr uint16, newfd, oldfd int32, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.FDOpen, Time: t, PID: pid, TID: pid, Files: files(pid), Syscall: nr,
		Install: installOf(nr), FD: newfd, FD2: oldfd, Stack: stack}
}

func dup2(pid uint32, newfd, oldfd int32, stack event.StackID, t uint64) event.Event {
	return dupFD(pid, sysDup2, newfd, oldfd, stack, t)
}

// pipe: pipe, pipe2 or socketpair (nr) installing fd1 and fd2.
func pipe(pid uint32, nr uint16, fd1, fd2 int32, kind event.Kind, target, target2 string, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.FDOpen, Time: t, PID: pid, TID: pid, Files: files(pid), Syscall: nr,
		Install: installOf(nr), FD: fd1, FD2: fd2, Kind: kind, Target: target, Target2: target2, Stack: stack}
}

// update: fd's description changed (a socket bound or connected).
func update(pid uint32, fd int32, kind event.Kind, target string, t uint64) event.Event {
	return event.Event{Type: event.FDUpdate, Time: t, PID: pid, TID: pid, Files: files(pid), FD: fd, FD2: -1,
		Kind: kind, Target: target}
}

func closeRange(pid uint32, lo, hi int32, flags uint32, t uint64) event.Event {
	return event.Event{Type: event.CloseRange, Time: t, PID: pid, TID: pid, Files: files(pid), Syscall: sysCloseRange,
		FD: lo, FD2: hi, Flags: flags}
}

// forkFrom: parent (whose table is parentFiles) creates process child with
// table childFiles (== parentFiles for CLONE_FILES).
func forkFrom(parent uint32, parentFiles uint64, child uint32, childFiles uint64, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.TaskNew, Time: t, PID: parent, TID: parent, Files: parentFiles,
		FD: -1, FD2: -1, Kind: event.KindProcess, Stack: stack,
		ChildPID: child, ChildTID: child, ChildFiles: childFiles, PPID: parent}
}

// fork: a plain fork, the child gets a table of its own.
func fork(parent, child uint32, stack event.StackID, t uint64) event.Event {
	return forkFrom(parent, files(parent), child, files(child), stack, t)
}

// cloneFiles: clone(CLONE_FILES), the child shares the parent's table.
func cloneFiles(parent, child uint32, stack event.StackID, t uint64) event.Event {
	return forkFrom(parent, files(parent), child, files(parent), stack, t)
}

func thread(pid, tid uint32, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.TaskNew, Time: t, PID: pid, TID: pid, Files: files(pid),
		FD: -1, FD2: -1, Kind: event.KindThread, Stack: stack,
		ChildPID: pid, ChildTID: tid, ChildFiles: files(pid), IsThread: true, PPID: pid}
}

// exec: pid replaced its image; open is the table after close-on-exec fds
// were closed.
func exec(pid uint32, open []uint64, complete bool, t uint64) event.Event {
	return event.Event{Type: event.Exec, Time: t, PID: pid, TID: pid, Files: files(pid), FD: -1, FD2: -1,
		ChildTID: pid, OpenFDs: open, OpenFDsComplete: complete}
}

// bits is an fd bitmap as the kernel's open_fds.
func bits(fds ...int) []uint64 {
	out := make([]uint64, 1)
	for _, fd := range fds {
		for fd/64 >= len(out) {
			out = append(out, 0)
		}
		out[fd/64] |= 1 << (fd % 64)
	}
	return out
}

func exit(pid, tid uint32, groupDead bool, code int32, t uint64) event.Event {
	return event.Event{Type: event.TaskExit, Time: t, PID: pid, TID: tid, FD: -1, FD2: -1,
		ChildPID: pid, ChildTID: tid, GroupDead: groupDead, ExitCode: code}
}

// dies: a single-threaded pid exits normally.
func dies(pid uint32, t uint64) event.Event { return exit(pid, pid, true, 0, t) }

func autoreaped(pid uint32, t uint64) event.Event {
	e := dies(pid, t)
	e.Autoreap = true
	return e
}

func exitGroup(pid, tid uint32, code int32, t uint64) event.Event {
	return event.Event{Type: event.ExitGroup, Time: t, PID: pid, TID: tid, Files: files(pid), Syscall: sysExitGroup,
		FD: -1, FD2: -1, ChildPID: pid, ChildTID: tid, ExitCode: code}
}

func reap(pid, child uint32, t uint64) event.Event {
	return event.Event{Type: event.Reap, Time: t, PID: pid, TID: pid, Files: files(pid), Syscall: sysWait4,
		FD: -1, FD2: -1, ChildPID: child, ChildTID: child}
}

// ---- comparison helpers ----

// leak is the comparable part of aggregator.Leak (every exported field of
// the handle, the judgement's time and reason).
type leak struct {
	PID       uint32
	FD        int32
	TID       uint32
	Kind      event.Kind
	Target    string
	Stack     event.StackID
	Inherited bool
	Outside   bool
	Created   uint64
	Ended     uint64
	Reason    string
	Handed    bool // HandedOver
}

func (l leak) String() string {
	return fmt.Sprintf("{pid %d fd %d tid %d %s %q stack %d inh %v out %v created %d ended %d %q handed %v}",
		l.PID, l.FD, l.TID, l.Kind, l.Target, l.Stack, l.Inherited, l.Outside, l.Created, l.Ended, l.Reason, l.Handed)
}

// fdLeak is an fd open when its process (or table) ended.
func fdLeak(pid uint32, fd int32, kind event.Kind, target string, stack event.StackID, created, ended uint64) leak {
	return leak{PID: pid, FD: fd, Kind: kind, Target: target, Stack: stack, Created: created, Ended: ended,
		Reason: aggregator.ReasonOpenAtExit}
}

func fileLeak(pid uint32, fd int32, target string, stack event.StackID, created, ended uint64) leak {
	return fdLeak(pid, fd, event.KindFile, target, stack, created, ended)
}

func inherited(l leak) leak { l.Inherited = true; return l }

// handedOver: an inherited copy whose original its parent no longer holds.
func handedOver(l leak) leak { l.Handed = true; return l }

func taskLeak(pid, tid uint32, kind event.Kind, stack event.StackID, created, ended uint64, reason string) leak {
	return leak{PID: pid, FD: -1, TID: tid, Kind: kind, Stack: stack, Created: created, Ended: ended, Reason: reason}
}

func project(ls []aggregator.Leak) []leak {
	out := make([]leak, 0, len(ls))
	for _, l := range ls {
		out = append(out, leak{PID: l.PID, FD: l.FD, TID: l.TID, Kind: l.Kind, Target: l.Target, Stack: l.Stack,
			Inherited: l.Inherited, Outside: l.Outside, Created: l.Created, Ended: l.Ended, Reason: l.Reason,
			Handed: l.HandedOver})
	}
	sortLeaks(out)
	return out
}

// sortLeaks puts leaks in a canonical order: the order in which one
// judgement reports threads and children is not part of the contract.
func sortLeaks(ls []leak) {
	sort.Slice(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		switch {
		case a.Ended != b.Ended:
			return a.Ended < b.Ended
		case a.PID != b.PID:
			return a.PID < b.PID
		case a.Reason != b.Reason:
			return a.Reason < b.Reason
		case a.FD != b.FD:
			return a.FD < b.FD
		}
		return a.TID < b.TID
	})
}

func fmtLeaks(ls []leak) string {
	if len(ls) == 0 {
		return "  (none)\n"
	}
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "  %v\n", l)
	}
	return b.String()
}

func checkLeaks(t *testing.T, a *aggregator.Aggregator, at uint64, want ...leak) {
	t.Helper()
	got := project(a.Leaks(at))
	w := append([]leak{}, want...)
	sortLeaks(w)
	if !reflect.DeepEqual(got, w) {
		t.Errorf("Leaks(%d, true):\ngot\n%swant\n%s", at, fmtLeaks(got), fmtLeaks(w))
	}
}

func fmtHandles(hs []aggregator.Handle) string {
	if len(hs) == 0 {
		return "  (none)\n"
	}
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "  {pid %d fd %d tid %d %s %q stack %d inh %v out %v created %d}\n",
			h.PID, h.FD, h.TID, h.Kind, h.Target, h.Stack, h.Inherited, h.Outside, h.Created)
	}
	return b.String()
}

func sameHandles(got, want []aggregator.Handle) bool {
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	return reflect.DeepEqual(got, want)
}

func checkLive(t *testing.T, a *aggregator.Aggregator, pid uint32, want ...aggregator.Handle) {
	t.Helper()
	if got := a.Live(pid); !sameHandles(got, want) {
		t.Errorf("Live(%d):\ngot\n%swant\n%s", pid, fmtHandles(got), fmtHandles(want))
	}
}

// fdH is a live fd handle of pid.
func fdH(pid uint32, fd int32, kind event.Kind, target string, stack event.StackID, created uint64) aggregator.Handle {
	return aggregator.Handle{FD: fd, Kind: kind, Target: target, Stack: stack, Created: created, PID: pid}
}

func fileH(pid uint32, fd int32, target string, stack event.StackID, created uint64) aggregator.Handle {
	return fdH(pid, fd, event.KindFile, target, stack, created)
}

// outsideH is an fd open before tracing (or found by exec/reconcile).
func outsideH(pid uint32, fd int32, kind event.Kind, target string, created uint64) aggregator.Handle {
	return aggregator.Handle{FD: fd, Kind: kind, Target: target, Outside: true, Created: created, PID: pid}
}

func inh(h aggregator.Handle) aggregator.Handle { h.Inherited = true; return h }

// outstanding is Outstanding() without entries that count nothing.
func outstanding(a *aggregator.Aggregator) map[event.StackID]int {
	out := map[event.StackID]int{}
	for s, n := range a.Outstanding() {
		if n != 0 {
			out[s] = n
		}
	}
	return out
}

func checkOutstanding(t *testing.T, a *aggregator.Aggregator, want map[event.StackID]int) {
	t.Helper()
	if got := outstanding(a); !reflect.DeepEqual(got, want) {
		t.Errorf("Outstanding() = %v, want %v", got, want)
	}
}

func apply(a *aggregator.Aggregator, evs ...event.Event) {
	for i := range evs {
		a.Apply(&evs[i])
	}
}

// ---- the table ----

type tcase struct {
	name   string
	cfg    aggregator.Config
	setup  func(a *aggregator.Aggregator) // before the events: Seed
	events []event.Event
	at     uint64 // Leaks(at, true); 0: the last event's time

	leaks       []leak
	live        map[uint32][]aggregator.Handle // pid -> exactly these fds
	threads     map[uint32][]uint32            // pid -> exactly these threads
	alive       []uint32                       // exactly these processes alive (nil: not checked)
	outside     []aggregator.Handle            // exactly Outside() (nil: not checked)
	outstanding map[event.StackID]int          // nil: not checked
	procs       []aggregator.ProcessInfo       // nil: not checked
	after       func(t *testing.T, a *aggregator.Aggregator)
}

func runCases(t *testing.T, cases []tcase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := aggregator.New(c.cfg)
			if c.setup != nil {
				c.setup(a)
			}
			apply(a, c.events...)
			if a.Events() != uint64(len(c.events)) {
				t.Errorf("Events() = %d, want %d", a.Events(), len(c.events))
			}
			at := c.at
			if at == 0 {
				at = a.Now()
			}
			checkLeaks(t, a, at, c.leaks...)
			for pid, want := range c.live {
				checkLive(t, a, pid, want...)
			}
			for pid, want := range c.threads {
				if got := a.Threads(pid); !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
					t.Errorf("Threads(%d) = %v, want %v", pid, got, want)
				}
			}
			if c.alive != nil {
				if got := a.LivePIDs(); !(len(got) == 0 && len(c.alive) == 0) && !reflect.DeepEqual(got, c.alive) {
					t.Errorf("LivePIDs() = %v, want %v", got, c.alive)
				}
				for _, pid := range c.alive {
					if !a.Alive(pid) {
						t.Errorf("Alive(%d) = false", pid)
					}
				}
			}
			if c.outside != nil {
				var got []aggregator.Handle
				for _, l := range a.Outside() {
					got = append(got, l.Handle)
				}
				if !sameHandles(got, c.outside) {
					t.Errorf("Outside():\ngot\n%swant\n%s", fmtHandles(got), fmtHandles(c.outside))
				}
			}
			if c.outstanding != nil {
				checkOutstanding(t, a, c.outstanding)
			}
			if c.procs != nil {
				if got := a.Processes(); !reflect.DeepEqual(got, c.procs) {
					t.Errorf("Processes():\ngot  %+v\nwant %+v", got, c.procs)
				}
			}
			if c.after != nil {
				c.after(t, a)
			}
		})
	}
}

var none = map[event.StackID]int{}

func TestFDLifetimes(t *testing.T) {
	const (
		file   = event.KindFile
		socket = event.KindSocket
	)
	runCases(t, []tcase{
		{
			name:        "open then close is no leak",
			events:      []event.Event{openFile(P, 3, "/etc/hosts", 1, 10), closeOwn(P, 3, 20), dies(P, 30)},
			alive:       []uint32{},
			outstanding: none,
			procs:       []aggregator.ProcessInfo{{PID: P, Exited: true}},
		},
		{
			name: "open never closed leaks at exit",
			events: []event.Event{
				openFile(P, 3, "/tmp/a", 1, 10),
				openFile(P, 4, "/tmp/b", 2, 15),
				closeOwn(P, 4, 20),
				dies(P, 30),
			},
			leaks:       []leak{fileLeak(P, 3, "/tmp/a", 1, 10, 30)},
			outstanding: none,
			procs:       []aggregator.ProcessInfo{{PID: P, Exited: true, Leaked: 1}},
		},
		{
			name: "leak keeps its kind and target",
			events: []event.Event{
				open(P, P, files(P), 5, socket, "tcp 10.0.0.1:40000->10.0.0.2:5432", 7, 10),
				dies(P, 20),
			},
			leaks: []leak{fdLeak(P, 5, socket, "tcp 10.0.0.1:40000->10.0.0.2:5432", 7, 10, 20)},
		},
		{
			name: "exit code is kept",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				exit(P, P, true, 3<<8, 20),
			},
			leaks: []leak{fileLeak(P, 3, "/a", 1, 10, 20)},
			procs: []aggregator.ProcessInfo{{PID: P, Exited: true, ExitCode: 3 << 8, Leaked: 1}},
		},
		{
			name: "stdin, stdout and stderr never leak",
			events: []event.Event{
				closeOwn(P, 0, 5),
				openFile(P, 0, "/dev/null", 1, 10),
				dup2(P, 1, 0, 2, 11),
				dup2(P, 2, 0, 3, 12),
				dies(P, 20),
			},
			outstanding: none,
		},
		{
			name: "close of an unknown fd is harmless",
			events: []event.Event{
				closeOwn(P, 9, 5),
				openFile(P, 3, "/a", 1, 10),
				closeOwn(P, 3, 20),
				closeOwn(P, 3, 21),
				closeOwn(P, 4, 22),
				openFile(P, 5, "/b", 2, 23),
				closeOwn(P, 6, 24),
			},
			live:        map[uint32][]aggregator.Handle{P: {fileH(P, 5, "/b", 2, 23)}},
			outstanding: map[event.StackID]int{2: 1},
		},
		{
			name: "an fd number reused after close is a new lifetime",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				closeOwn(P, 3, 20),
				openFile(P, 3, "/b", 2, 30),
				dies(P, 40),
			},
			leaks: []leak{fileLeak(P, 3, "/b", 2, 30, 40)},
		},
		{
			name: "an fd reopened after a lost close replaces the old one",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 3, "/b", 2, 20),
			},
			live:        map[uint32][]aggregator.Handle{P: {fileH(P, 3, "/b", 2, 20)}},
			outstanding: map[event.StackID]int{2: 1},
		},
		{
			name: "dup2 onto an open fd releases the old one",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 20),
				dup2(P, 4, 3, 3, 30),
			},
			live:        map[uint32][]aggregator.Handle{P: {fileH(P, 3, "/a", 1, 10), fileH(P, 4, "/a", 3, 30)}},
			outstanding: map[event.StackID]int{1: 1, 3: 1},
		},
		{
			name: "dup2 onto an open fd: only the duplicate leaks",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 20),
				dup2(P, 4, 3, 3, 30),
				closeOwn(P, 3, 40),
				dies(P, 50),
			},
			leaks:       []leak{fileLeak(P, 4, "/a", 3, 30, 50)},
			outstanding: none,
		},
		{
			name: "dup copies the path and kind of a file from the source",
			events: []event.Event{
				openFile(P, 3, "/srv/data/part-0.parquet", 1, 10),
				dupFD(P, sysDup, 5, 3, 2, 20),
				dupFD(P, sysFcntl, 10, 3, 3, 21),
				dupFD(P, sysDup3, 11, 3, 4, 22),
				closeOwn(P, 3, 30),
				dies(P, 40),
			},
			leaks: []leak{
				fileLeak(P, 5, "/srv/data/part-0.parquet", 2, 20, 40),
				fileLeak(P, 10, "/srv/data/part-0.parquet", 3, 21, 40),
				fileLeak(P, 11, "/srv/data/part-0.parquet", 4, 22, 40),
			},
		},
		{
			name: "dup of a file: the open's path wins over the kernel's dentry name",
			events: func() []event.Event {
				d := dupFD(P, sysDup, 4, 3, 2, 20)
				d.Kind, d.Target = event.KindFile, "part-0.parquet"
				return []event.Event{openFile(P, 3, "/srv/data/part-0.parquet", 1, 10), d}
			}(),
			live: map[uint32][]aggregator.Handle{P: {
				fileH(P, 3, "/srv/data/part-0.parquet", 1, 10),
				fileH(P, 4, "/srv/data/part-0.parquet", 2, 20),
			}},
		},
		{
			name: "dup of a socket keeps the kernel's fresh description",
			events: func() []event.Event {
				d := dupFD(P, sysDup, 5, 3, 2, 20)
				d.Kind, d.Target = socket, "tcp 10.0.0.1:40000->10.0.0.2:5432"
				return []event.Event{
					open(P, P, files(P), 3, socket, "tcp", 1, 10),
					d,
					closeOwn(P, 3, 30),
					dies(P, 40),
				}
			}(),
			leaks: []leak{fdLeak(P, 5, socket, "tcp 10.0.0.1:40000->10.0.0.2:5432", 2, 20, 40)},
		},
		{
			name: "a socket's target follows bind and connect",
			events: []event.Event{
				open(P, P, files(P), 3, socket, "tcp", 1, 10),
				update(P, 3, socket, "tcp 10.0.0.1:40000->10.0.0.2:5432", 20),
				dies(P, 30),
			},
			leaks: []leak{fdLeak(P, 3, socket, "tcp 10.0.0.1:40000->10.0.0.2:5432", 1, 10, 30)},
		},
		{
			name: "an update of another kind, an empty target or an unknown fd changes nothing",
			events: []event.Event{
				open(P, P, files(P), 3, socket, "udp", 1, 10),
				update(P, 3, event.KindFile, "/etc/passwd", 20),
				update(P, 3, socket, "", 21),
				update(P, 4, socket, "tcp 1.1.1.1:53", 22),
			},
			live:        map[uint32][]aggregator.Handle{P: {fdH(P, 3, socket, "udp", 1, 10)}},
			outstanding: map[event.StackID]int{1: 1},
		},
		{
			name: "dup of an fd from before tracing is a new handle",
			setup: func(a *aggregator.Aggregator) {
				a.Seed(P, 1, "app", "/bin/app", []aggregator.SeedFD{{FD: 3, Kind: file, Target: "/etc/app.conf"}}, nil, 1)
			},
			events: []event.Event{dupFD(P, sysDup, 4, 3, 2, 20), dies(P, 30)},
			leaks:  []leak{fileLeak(P, 4, "/etc/app.conf", 2, 20, 30)},
		},
		{
			name: "dup2(fd, fd) changes nothing",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				dup2(P, 3, 3, 2, 20),
			},
			live:        map[uint32][]aggregator.Handle{P: {fileH(P, 3, "/a", 1, 10)}},
			outstanding: map[event.StackID]int{1: 1},
		},
		{
			name: "dup2(fd, fd) then close: no leak",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				dup2(P, 3, 3, 2, 20),
				closeOwn(P, 3, 30),
				dies(P, 40),
			},
			outstanding: none,
		},
		{
			name:   "pipe installs two handles",
			events: []event.Event{pipe(P, sysPipe, 3, 4, event.KindPipe, "pipe:[42]", "pipe:[42]", 1, 10), dies(P, 20)},
			leaks: []leak{
				fdLeak(P, 3, event.KindPipe, "pipe:[42]", 1, 10, 20),
				fdLeak(P, 4, event.KindPipe, "pipe:[42]", 1, 10, 20),
			},
		},
		{
			name: "pipe2: closing one end leaves the other",
			events: []event.Event{
				pipe(P, sysPipe2, 5, 6, event.KindPipe, "pipe:[43]", "", 1, 10),
				closeOwn(P, 5, 15),
				dies(P, 20),
			},
			leaks: []leak{fdLeak(P, 6, event.KindPipe, "pipe:[43]", 1, 10, 20)},
		},
		{
			name: "socketpair installs two sockets, each with its target",
			events: []event.Event{
				pipe(P, sysSocketpair, 3, 4, socket, "unix:[100]", "unix:[101]", 1, 10),
			},
			live: map[uint32][]aggregator.Handle{P: {
				fdH(P, 3, socket, "unix:[100]", 1, 10),
				fdH(P, 4, socket, "unix:[101]", 1, 10),
			}},
			outstanding: map[event.StackID]int{1: 2},
		},
		{
			name: "pipe ends released by close are not leaks",
			events: []event.Event{
				pipe(P, sysPipe2, 3, 4, event.KindPipe, "pipe:[44]", "pipe:[44]", 1, 10),
				closeOwn(P, 4, 11),
				closeOwn(P, 3, 12),
				dies(P, 20),
			},
			outstanding: none,
		},
		{
			name: "close_range releases [FD, FD2]",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				openFile(P, 5, "/c", 3, 12),
				openFile(P, 6, "/d", 4, 13),
				closeRange(P, 4, 5, 0, 20),
			},
			live:        map[uint32][]aggregator.Handle{P: {fileH(P, 3, "/a", 1, 10), fileH(P, 6, "/d", 4, 13)}},
			outstanding: map[event.StackID]int{1: 1, 4: 1},
		},
		{
			name: "close_range up to ~0 releases everything",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				openFile(P, 1000, "/c", 3, 12),
				closeRange(P, 3, math.MaxInt32, 0, 20),
				dies(P, 30),
			},
			outstanding: none,
		},
		{
			name: "close_range with CLOSE_RANGE_CLOEXEC releases nothing",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				closeRange(P, 3, math.MaxInt32, event.FlagOnlyCloexec, 20),
				dies(P, 30),
			},
			leaks: []leak{fileLeak(P, 3, "/a", 1, 10, 30), fileLeak(P, 4, "/b", 2, 11, 30)},
		},
		{
			name: "close_range CLOEXEC, then exec closes them",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				closeRange(P, 3, math.MaxInt32, event.FlagOnlyCloexec, 20),
				exec(P, bits(0, 1, 2), true, 25),
				dies(P, 30),
			},
			outstanding: none,
		},
	})
}

func TestExec(t *testing.T) {
	runCases(t, []tcase{
		{
			name: "exec releases close-on-exec fds and keeps the others",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				openFile(P, 5, "/c", 3, 12),
				exec(P, bits(0, 1, 2, 4, 7), true, 20),
			},
			live: map[uint32][]aggregator.Handle{P: {
				outsideH(P, 0, event.KindUnknown, "", 20),
				outsideH(P, 1, event.KindUnknown, "", 20),
				outsideH(P, 2, event.KindUnknown, "", 20),
				fileH(P, 4, "/b", 2, 11),
				outsideH(P, 7, event.KindUnknown, "", 20),
			}},
			outside: []aggregator.Handle{
				outsideH(P, 0, event.KindUnknown, "", 20),
				outsideH(P, 1, event.KindUnknown, "", 20),
				outsideH(P, 2, event.KindUnknown, "", 20),
				outsideH(P, 7, event.KindUnknown, "", 20),
			},
			outstanding: map[event.StackID]int{0: 4, 2: 1},
		},
		{
			name: "an fd kept across exec stays the process's handle",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				openFile(P, 5, "/c", 3, 12),
				exec(P, bits(0, 1, 2, 4, 7), true, 20),
				dies(P, 30),
			},
			leaks:       []leak{fileLeak(P, 4, "/b", 2, 11, 30)},
			outstanding: none,
		},
		{
			name: "fds above an incomplete bitmap are kept, the process is marked reconciled",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 70, "/b", 2, 11),
				exec(P, bits(0, 1, 2), false, 20),
				dies(P, 30),
			},
			leaks: []leak{fileLeak(P, 70, "/b", 2, 11, 30)},
			procs: []aggregator.ProcessInfo{{PID: P, Exited: true, Leaked: 1, Reconciled: true}},
		},
		{
			name: "exec ends the other threads without reporting them",
			events: []event.Event{
				thread(P, 101, 5, 10),
				exec(P, bits(0, 1, 2), true, 20),
			},
			threads:     map[uint32][]uint32{P: {}},
			outstanding: map[event.StackID]int{0: 3},
		},
		{
			name: "subprocess: child dup2s a pipe onto stdout and execs",
			events: []event.Event{
				pipe(P, sysPipe2, 3, 4, event.KindPipe, "pipe:[7]", "pipe:[7]", 1, 10),
				fork(P, 200, 9, 20),
				dupFD(200, sysDup2, 1, 4, 3, 21),
				exec(200, bits(0, 1, 2), true, 22),
				closeOwn(P, 4, 23),
				dies(200, 30),
				reap(P, 200, 31),
				closeOwn(P, 3, 32),
				dies(P, 40),
			},
			procs: []aggregator.ProcessInfo{{PID: 200, PPID: P, Exited: true}, {PID: P, Exited: true}},
		},
	})
}

func TestForkAndSharedTables(t *testing.T) {
	const C = 200
	runCases(t, []tcase{
		{
			name: "fork copies the table, inherited, with the creator's stack",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				fork(P, C, 9, 20),
				closeFD(C, C, files(C), 4, 30),
			},
			live: map[uint32][]aggregator.Handle{
				P: {fileH(P, 3, "/a", 1, 10), fileH(P, 4, "/b", 2, 11)},
				C: {inh(fileH(C, 3, "/a", 1, 10))},
			},
			alive:       []uint32{P, C},
			outstanding: map[event.StackID]int{1: 2, 2: 1, 9: 1},
		},
		{
			name: "a child exiting with inherited copies reports them as inherited",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				openFile(P, 4, "/b", 2, 11),
				fork(P, C, 9, 20),
				closeFD(C, C, files(C), 4, 30),
				openFile(C, 5, "/child", 5, 35),
				dies(C, 40),
				reap(P, C, 45),
				closeOwn(P, 3, 50),
				dies(P, 60),
			},
			leaks: []leak{
				inherited(fileLeak(C, 3, "/a", 1, 10, 40)),
				fileLeak(C, 5, "/child", 5, 35, 40),
				fileLeak(P, 4, "/b", 2, 11, 60),
			},
			procs: []aggregator.ProcessInfo{
				{PID: C, PPID: P, Exited: true, Leaked: 2},
				{PID: P, Exited: true, Leaked: 1},
			},
		},
		{
			name: "the parent's own leaks are unaffected by the child's closes",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				fork(P, C, 9, 20),
				closeFD(C, C, files(C), 3, 21),
				dies(C, 30),
				reap(P, C, 31),
				dies(P, 40),
			},
			leaks: []leak{fileLeak(P, 3, "/a", 1, 10, 40)},
		},
		{
			name: "fds from before tracing stay outside in the child",
			setup: func(a *aggregator.Aggregator) {
				a.Seed(P, 1, "app", "/bin/app", []aggregator.SeedFD{{FD: 3, Kind: event.KindFile, Target: "/log"}}, nil, 1)
			},
			events: []event.Event{fork(P, C, 9, 20)},
			live: map[uint32][]aggregator.Handle{
				P: {outsideH(P, 3, event.KindFile, "/log", 1)},
				C: {inh(outsideH(C, 3, event.KindFile, "/log", 1))},
			},
			after: func(t *testing.T, a *aggregator.Aggregator) {
				apply(a, dies(C, 30), reap(P, C, 31), dies(P, 40))
				checkLeaks(t, a, 40)
			},
		},
		{
			name: "CLONE_FILES: one table for both processes",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				cloneFiles(P, C, 9, 20),
				open(C, C, files(P), 4, event.KindFile, "/b", 2, 30),
			},
			live: map[uint32][]aggregator.Handle{
				P: {fileH(P, 3, "/a", 1, 10), fileH(C, 4, "/b", 2, 30)},
				C: {fileH(P, 3, "/a", 1, 10), fileH(C, 4, "/b", 2, 30)},
			},
			outstanding: map[event.StackID]int{1: 1, 2: 1, 9: 1},
		},
		{
			name: "CLONE_FILES: a close by either process closes the fd of both",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				cloneFiles(P, C, 9, 20),
				closeFD(C, C, files(P), 3, 30),
			},
			live: map[uint32][]aggregator.Handle{P: {}, C: {}},
		},
		{
			name: "CLONE_FILES: no leak while the parent still uses the table",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				cloneFiles(P, C, 9, 20),
				open(C, C, files(P), 4, event.KindFile, "/b", 2, 30),
				dies(C, 40),
				reap(P, C, 45),
			},
			live: map[uint32][]aggregator.Handle{P: {fileH(P, 3, "/a", 1, 10), fileH(C, 4, "/b", 2, 30)}},
		},
		{
			name: "CLONE_FILES: leaks reported when the last user exits",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				cloneFiles(P, C, 9, 20),
				open(C, C, files(P), 4, event.KindFile, "/b", 2, 30),
				dies(C, 40),
				reap(P, C, 45),
				dies(P, 50),
			},
			leaks: []leak{fileLeak(P, 3, "/a", 1, 10, 50), fileLeak(C, 4, "/b", 2, 30, 50)},
		},
		{
			name: "CLONE_FILES: the parent exits first, the child's exit ends the table",
			events: []event.Event{
				openFile(P, 3, "/a", 1, 10),
				cloneFiles(P, C, 9, 20),
				open(C, C, files(P), 4, event.KindFile, "/b", 2, 30),
				dies(P, 40),
				closeFD(C, C, files(P), 3, 45),
				dies(C, 50),
			},
			leaks: []leak{
				taskLeak(P, C, event.KindProcess, 9, 20, 40, aggregator.ReasonOutlivedParent),
				fileLeak(C, 4, "/b", 2, 30, 50),
			},
			alive:       []uint32{},
			outstanding: none,
		},
	})
}

func TestCloneFilesLeakOnlyAtLastUser(t *testing.T) {
	const C = 200
	a := aggregator.New(aggregator.Config{})
	apply(a,
		openFile(P, 3, "/a", 1, 10),
		cloneFiles(P, C, 9, 20),
		open(C, C, files(P), 4, event.KindFile, "/b", 2, 30),
		dies(C, 40),
	)
	checkLeaks(t, a, 40)
	apply(a, reap(P, C, 45))
	checkLeaks(t, a, 45)
	apply(a, dies(P, 50))
	checkLeaks(t, a, 50, fileLeak(P, 3, "/a", 1, 10, 50), fileLeak(C, 4, "/b", 2, 30, 50))
}

func TestThreads(t *testing.T) {
	runCases(t, []tcase{
		{
			name:        "a running thread is listed",
			events:      []event.Event{thread(P, 101, 5, 10), thread(P, 102, 6, 11)},
			threads:     map[uint32][]uint32{P: {101, 102}},
			outstanding: map[event.StackID]int{5: 1, 6: 1},
		},
		{
			name:        "a thread that exited is removed",
			events:      []event.Event{thread(P, 101, 5, 10), thread(P, 102, 6, 11), exit(P, 101, false, 0, 20)},
			threads:     map[uint32][]uint32{P: {102}},
			outstanding: map[event.StackID]int{6: 1},
		},
		{
			name: "a thread that exited before the process does not leak",
			events: []event.Event{
				thread(P, 101, 5, 10),
				exit(P, 101, false, 0, 20),
				exitGroup(P, P, 0, 30),
				dies(P, 31),
			},
			outstanding: none,
		},
		{
			name: "a thread still running at exit_group leaks",
			events: []event.Event{
				thread(P, 101, 5, 10),
				thread(P, 102, 6, 11),
				exit(P, 102, false, 0, 15),
				exitGroup(P, P, 0, 30),
				exit(P, 101, false, 0, 31),
				exit(P, P, true, 0, 32),
			},
			leaks:       []leak{taskLeak(P, 101, event.KindThread, 5, 10, 30, aggregator.ReasonThreadAtExit)},
			outstanding: none,
			procs:       []aggregator.ProcessInfo{{PID: P, Exited: true, Leaked: 1}},
		},
		{
			name: "exit_group called by a thread: the caller is no leak",
			events: []event.Event{
				thread(P, 101, 5, 10),
				exitGroup(P, 101, 0, 30),
				exit(P, P, false, 0, 31),
				exit(P, 101, true, 0, 32),
			},
			outstanding: none,
		},
		{
			name: "killed by a signal: the threads still running leak",
			events: []event.Event{
				thread(P, 101, 5, 10),
				exit(P, P, false, 9, 30),
				exit(P, 101, true, 9, 31),
			},
			leaks: []leak{taskLeak(P, 101, event.KindThread, 5, 10, 30, aggregator.ReasonThreadAtExit)},
		},
		{
			name: "a thread's fds are its process's",
			events: []event.Event{
				thread(P, 101, 5, 10),
				open(P, 101, files(P), 3, event.KindFile, "/t", 1, 20),
				exit(P, 101, false, 0, 30),
			},
			live:    map[uint32][]aggregator.Handle{P: {fileH(P, 3, "/t", 1, 20)}},
			threads: map[uint32][]uint32{P: {}},
		},
		{
			name: "a thread's fd leaks with its process",
			events: []event.Event{
				thread(P, 101, 5, 10),
				open(P, 101, files(P), 3, event.KindFile, "/t", 1, 20),
				exit(P, 101, false, 0, 30),
				dies(P, 40),
			},
			leaks: []leak{fileLeak(P, 3, "/t", 1, 20, 40)},
		},
		{
			name: "the main thread exits first, the last thread ends the process",
			events: []event.Event{
				thread(P, 101, 5, 10),
				openFile(P, 3, "/a", 1, 11),
				exit(P, P, false, 0, 20),
				exit(P, 101, true, 0, 30),
			},
			leaks: []leak{fileLeak(P, 3, "/a", 1, 11, 30)},
			alive: []uint32{},
		},
	})
}

func TestChildren(t *testing.T) {
	const C = 200
	runCases(t, []tcase{
		{
			name:   "a child that exited and was reaped is no leak",
			events: []event.Event{fork(P, C, 9, 10), dies(C, 20), reap(P, C, 25), dies(P, 30)},
			alive:  []uint32{},
		},
		{
			name:   "a child that exited and was never reaped is a zombie",
			events: []event.Event{fork(P, C, 9, 10), dies(C, 20), dies(P, 30)},
			leaks: []leak{
				taskLeak(P, C, event.KindProcess, 9, 10, 30, aggregator.ReasonZombie),
			},
			outstanding: none,
		},
		{
			name:        "a child the kernel reaps itself is no zombie",
			events:      []event.Event{fork(P, C, 9, 10), autoreaped(C, 20), dies(P, 30)},
			outstanding: none,
		},
		{
			name:   "a child still running when its parent exits outlived it",
			events: []event.Event{fork(P, C, 9, 10), dies(P, 30)},
			leaks: []leak{
				taskLeak(P, C, event.KindProcess, 9, 10, 30, aggregator.ReasonOutlivedParent),
			},
			alive: []uint32{C},
		},
		{
			name: "a child that outlived its parent still reports its own leaks",
			events: []event.Event{
				fork(P, C, 9, 10),
				dies(P, 30),
				openFile(C, 3, "/late", 4, 35),
				dies(C, 40),
			},
			leaks: []leak{
				taskLeak(P, C, event.KindProcess, 9, 10, 30, aggregator.ReasonOutlivedParent),
				fileLeak(C, 3, "/late", 4, 35, 40),
			},
			alive: []uint32{},
		},
		{
			name: "grandchild: each generation judged on its own",
			events: []event.Event{
				fork(P, C, 9, 10),
				fork(C, 300, 8, 15),
				dies(300, 20),
				dies(C, 25),
				reap(P, C, 26),
				dies(P, 30),
			},
			leaks: []leak{taskLeak(C, 300, event.KindProcess, 8, 15, 25, aggregator.ReasonZombie)},
		},
	})
}

func TestPIDReuse(t *testing.T) {
	const C = 200
	runCases(t, []tcase{
		{
			name: "a new child with an exited child's pid starts from the fork copy",
			events: []event.Event{
				fork(P, C, 9, 10),
				openFile(C, 5, "/old", 5, 15),
				dies(C, 20),
				reap(P, C, 25),
				openFile(P, 3, "/p", 1, 30),
				fork(P, C, 8, 40),
			},
			leaks: []leak{fileLeak(C, 5, "/old", 5, 15, 20)},
			live: map[uint32][]aggregator.Handle{
				C: {inh(fileH(C, 3, "/p", 1, 30))},
			},
			alive: []uint32{P, C},
		},
		{
			name: "a new child with an exited child's pid: its exit reports only its own",
			events: []event.Event{
				fork(P, C, 9, 10),
				openFile(C, 5, "/old", 5, 15),
				dies(C, 20),
				reap(P, C, 25),
				fork(P, C, 8, 40),
				openFile(C, 6, "/new", 6, 45),
				dies(C, 50),
				reap(P, C, 55),
			},
			leaks: []leak{fileLeak(C, 5, "/old", 5, 15, 20), fileLeak(C, 6, "/new", 6, 45, 50)},
		},
		{
			name: "a new process with the pid of one whose exit was lost starts empty",
			events: []event.Event{
				openFile(300, 7, "/old", 7, 10),
				fork(P, 300, 9, 20), // same pid, and the kernel reused the table's address too
			},
			// The old process's handles are judged when its pid is taken.
			leaks: []leak{fileLeak(300, 7, "/old", 7, 10, 20)},
			live:  map[uint32][]aggregator.Handle{300: {}},
			alive: []uint32{P, 300},
			after: func(t *testing.T, a *aggregator.Aggregator) {
				apply(a, openFile(300, 7, "/new", 2, 30))
				checkLive(t, a, 300, fileH(300, 7, "/new", 2, 30))
			},
		},
		{
			name: "pid reuse with a CLONE_FILES child: the new one shares the new parent's table",
			events: []event.Event{
				openFile(C, 7, "/old", 7, 10),
				openFile(P, 3, "/p", 1, 15),
				cloneFiles(P, C, 9, 20),
			},
			leaks: []leak{fileLeak(C, 7, "/old", 7, 10, 20)},
			live:  map[uint32][]aggregator.Handle{C: {fileH(P, 3, "/p", 1, 15)}},
		},
	})
}

func TestAttachMode(t *testing.T) {
	cfg := aggregator.Config{Mode: aggregator.ModeAttach, MinAge: 5 * sec}
	seed := func(a *aggregator.Aggregator) {
		a.Seed(P, 1, "app", "/bin/app", []aggregator.SeedFD{
			{FD: 0, Kind: event.KindFile, Target: "/dev/null"},
			{FD: 1, Kind: event.KindPipe, Target: "pipe:[1]"},
			{FD: 2, Kind: event.KindPipe, Target: "pipe:[1]"},
			{FD: 3, Kind: event.KindSocket, Target: "tcp 0.0.0.0:80"},
		}, []uint32{P}, 0)
	}
	seeded := []aggregator.Handle{
		outsideH(P, 0, event.KindFile, "/dev/null", 0),
		outsideH(P, 1, event.KindPipe, "pipe:[1]", 0),
		outsideH(P, 2, event.KindPipe, "pipe:[1]", 0),
		outsideH(P, 3, event.KindSocket, "tcp 0.0.0.0:80", 0),
	}
	outstanding := func(l leak) leak { l.Reason = aggregator.ReasonOutstanding; return l }
	runCases(t, []tcase{
		{
			name:  "handles older than min-age are outstanding, younger are not",
			cfg:   cfg,
			setup: seed,
			events: []event.Event{
				openFile(P, 4, "/a", 1, 1*sec),
				openFile(P, 5, "/b", 2, 8*sec),
				thread(P, 101, 3, 2*sec),
				thread(P, 102, 4, 9*sec),
			},
			at: 10 * sec,
			leaks: []leak{
				outstanding(fileLeak(P, 4, "/a", 1, 1*sec, 10*sec)),
				outstanding(taskLeak(P, 101, event.KindThread, 3, 2*sec, 10*sec, "")),
			},
			outside:     seeded,
			outstanding: map[event.StackID]int{0: 4, 1: 1, 2: 1, 3: 1, 4: 1},
		},
		{
			name:   "a young handle is not outstanding",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec)},
			at:     3 * sec,
		},
		{
			name:   "a closed handle is not outstanding",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec), closeOwn(P, 4, 9*sec)},
			at:     10 * sec,
		},
		{
			name:   "a thread that exited is not outstanding",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{thread(P, 101, 3, 1*sec), exit(P, 101, false, 0, 2*sec)},
			at:     10 * sec,
		},
		{
			name:   "a zombie older than min-age is a leak",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{fork(P, 200, 9, 1*sec), dies(200, 2*sec)},
			at:     10 * sec,
			leaks:  []leak{taskLeak(P, 200, event.KindProcess, 9, 1*sec, 10*sec, aggregator.ReasonZombie)},
		},
		{
			name:   "a young zombie is not a leak yet",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{fork(P, 200, 9, 1*sec), dies(200, 2*sec)},
			at:     6 * sec,
		},
		{
			name:   "a copy the parent still holds stays inherited",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec), fork(P, 200, 9, 2*sec)},
			at:     10 * sec,
			leaks: []leak{
				outstanding(fileLeak(P, 4, "/a", 1, 1*sec, 10*sec)),
				inherited(outstanding(fileLeak(200, 4, "/a", 1, 1*sec, 10*sec))),
			},
		},
		{
			// accept, fork, close: the worker alone holds the connection.
			name:   "a copy whose original the parent closed is handed over: the child's own",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec), fork(P, 200, 9, 2*sec), closeOwn(P, 4, 3*sec)},
			at:     10 * sec,
			leaks:  []leak{handedOver(outstanding(fileLeak(200, 4, "/a", 1, 1*sec, 10*sec)))},
		},
		{
			name:  "a copy whose original the parent closed and reopened from the same site is handed over",
			cfg:   cfg,
			setup: seed,
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec), fork(P, 200, 9, 2*sec), closeOwn(P, 4, 3*sec),
				openFile(P, 4, "/a", 1, 4*sec)},
			at: 10 * sec,
			leaks: []leak{
				outstanding(fileLeak(P, 4, "/a", 1, 4*sec, 10*sec)),
				handedOver(outstanding(fileLeak(200, 4, "/a", 1, 1*sec, 10*sec))),
			},
		},
		{
			name:   "a copy whose parent exited is handed over",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec), fork(P, 200, 9, 2*sec), dies(P, 3*sec)},
			at:     10 * sec,
			leaks:  []leak{handedOver(outstanding(fileLeak(200, 4, "/a", 1, 1*sec, 10*sec)))},
		},
		{
			name:   "run: a handed-over copy stays inherited",
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec), fork(P, 200, 9, 2*sec), closeOwn(P, 4, 3*sec), dies(200, 4*sec)},
			leaks:  []leak{inherited(fileLeak(200, 4, "/a", 1, 1*sec, 4*sec))},
		},
		{
			name:   "handles still open at exit are held at exit, not leaks",
			cfg:    cfg,
			setup:  seed,
			events: []event.Event{openFile(P, 4, "/a", 1, 1*sec), thread(P, 101, 3, 2*sec), dies(P, 8*sec)},
			at:     10 * sec,
			after: func(t *testing.T, a *aggregator.Aggregator) {
				h := a.Held()
				if h.Processes != 1 || h.Handles != 2 || h.Stacks[1].Count != 1 || h.Stacks[1].Kinds[event.KindFile] != 1 ||
					h.Stacks[3].Count != 1 || h.Stacks[3].Kinds[event.KindThread] != 1 {
					t.Errorf("Held() = %+v, want the file and the thread of one process", h)
				}
			},
		},
	})
}

// TestOutstanding follows the per-stack counts as handles come and go.
func TestOutstanding(t *testing.T) {
	const C = 200
	a := aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: sec})
	a.Seed(P, 1, "app", "/bin/app", []aggregator.SeedFD{{FD: 0}, {FD: 1}, {FD: 2}}, nil, 0)
	checkOutstanding(t, a, map[event.StackID]int{0: 3})

	apply(a, openFile(P, 3, "/a", 1, 10), openFile(P, 4, "/a", 1, 11), openFile(P, 5, "/b", 2, 12))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 1: 2, 2: 1})

	apply(a, closeOwn(P, 3, 13))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 1: 1, 2: 1})
	apply(a, closeOwn(P, 4, 14))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1})

	apply(a, dup2(P, 6, 5, 3, 15))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 3: 1})
	apply(a, dup2(P, 6, 5, 4, 16)) // replaces the first duplicate
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 4: 1})

	apply(a, pipe(P, sysPipe2, 7, 8, event.KindPipe, "pipe:[3]", "pipe:[3]", 5, 17))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 4: 1, 5: 2})
	apply(a, closeRange(P, 7, 8, 0, 18))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 4: 1})

	apply(a, thread(P, 101, 6, 19))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 4: 1, 6: 1})
	apply(a, exit(P, 101, false, 0, 20))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 4: 1})

	// A child: its copies and the child itself.
	apply(a, fork(P, C, 7, 21))
	checkOutstanding(t, a, map[event.StackID]int{0: 6, 2: 2, 4: 2, 7: 1})
	apply(a, closeFD(C, C, files(C), 5, 22))
	checkOutstanding(t, a, map[event.StackID]int{0: 6, 2: 1, 4: 2, 7: 1})
	apply(a, dies(C, 23)) // a zombie now: still a handle of the parent
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 4: 1, 7: 1})

	apply(a, fork(P, 201, 8, 24), autoreaped(201, 25))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 4: 1, 7: 1})

	// exec closes 6 (close-on-exec) and keeps 5.
	apply(a, exec(P, bits(0, 1, 2, 5), true, 26))
	checkOutstanding(t, a, map[event.StackID]int{0: 3, 2: 1, 7: 1})

	apply(a, dies(P, 27)) // the zombie is dropped with its parent
	checkOutstanding(t, a, map[event.StackID]int{})
	// Attach: what each process held as it exited is summed apart.
	checkLeaks(t, a, 27)
	h := a.Held()
	if h.Processes != 3 || h.Handles != 5 || len(h.Stacks) != 3 ||
		h.Stacks[4].Count != 2 || h.Stacks[4].Inherited != 2 ||
		h.Stacks[2].Count != 2 || h.Stacks[2].Inherited != 1 ||
		h.Stacks[7].Count != 1 || h.Stacks[7].Kinds[event.KindProcess] != 1 {
		t.Errorf("Held() = %+v", h)
		for id, s := range h.Stacks {
			t.Errorf("  stack %d: %+v", id, *s)
		}
	}
}

func TestReconcile(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	apply(a,
		openFile(P, 3, "/a", 1, 10),
		open(P, P, files(P), 4, event.KindSocket, "tcp 1.2.3.4:5", 2, 11),
		openFile(P, 5, "/c", 3, 12),
		openFile(P, 7, "/e", 4, 13),
	)
	if a.Reconcile(999, nil, 20) {
		t.Error("Reconcile of an unknown pid = true")
	}
	ok := a.Reconcile(P, []aggregator.SeedFD{
		{FD: 3, Kind: event.KindFile, Target: "/a"},        // confirmed: keeps its history
		{FD: 4, Kind: event.KindPipe, Target: "pipe:[9]"},  // another kind now: replaced
		{FD: 6, Kind: event.KindFile, Target: "/d"},        // unknown to us: outside
		{FD: 7, Kind: event.KindUnknown, Target: "/e (?)"}, // kind unknown in /proc: confirmed
	}, 20)
	if !ok {
		t.Fatal("Reconcile = false")
	}
	checkLive(t, a, P,
		fileH(P, 3, "/a", 1, 10),
		outsideH(P, 4, event.KindPipe, "pipe:[9]", 20),
		outsideH(P, 6, event.KindFile, "/d", 20),
		fileH(P, 7, "/e", 4, 13),
	)
	checkOutstanding(t, a, map[event.StackID]int{0: 2, 1: 1, 4: 1})
	if ps := a.Processes(); len(ps) != 1 || !ps[0].Reconciled {
		t.Errorf("Processes() = %+v, want one reconciled", ps)
	}

	apply(a, dies(P, 30))
	checkLeaks(t, a, 30, fileLeak(P, 3, "/a", 1, 10, 30), fileLeak(P, 7, "/e", 4, 13, 30))
	if a.Reconcile(P, nil, 40) {
		t.Error("Reconcile of an exited pid = true")
	}
}

func TestReconcileEmptiesTable(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	apply(a, openFile(P, 3, "/a", 1, 10), openFile(P, 4, "/b", 2, 11))
	a.Reconcile(P, nil, 20)
	checkLive(t, a, P)
	checkOutstanding(t, a, map[event.StackID]int{})
	apply(a, dies(P, 30))
	checkLeaks(t, a, 30)
}

func TestSeed(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	a.Seed(P, 1, "python3", "/usr/bin/python3", []aggregator.SeedFD{
		{FD: 0, Kind: event.KindFile, Target: "/dev/null"},
		{FD: 1, Kind: event.KindFile, Target: "/dev/null"},
		{FD: 2, Kind: event.KindFile, Target: "/dev/null"},
		{FD: 3, Kind: event.KindFile, Target: "/var/log/app.log"},
		{FD: 4, Kind: event.KindSocket, Target: "tcp 0.0.0.0:8080"},
	}, []uint32{P, 101}, 5)
	want := []aggregator.Handle{
		outsideH(P, 0, event.KindFile, "/dev/null", 5),
		outsideH(P, 1, event.KindFile, "/dev/null", 5),
		outsideH(P, 2, event.KindFile, "/dev/null", 5),
		outsideH(P, 3, event.KindFile, "/var/log/app.log", 5),
		outsideH(P, 4, event.KindSocket, "tcp 0.0.0.0:8080", 5),
	}
	checkLive(t, a, P, want...)
	var got []aggregator.Handle
	for _, l := range a.Outside() {
		got = append(got, l.Handle)
		if l.Comm != "python3" || l.Exe != "/usr/bin/python3" {
			t.Errorf("Outside() fd %d: comm %q exe %q", l.FD, l.Comm, l.Exe)
		}
	}
	if !sameHandles(got, want) {
		t.Errorf("Outside():\ngot\n%swant\n%s", fmtHandles(got), fmtHandles(want))
	}
	if got := a.Threads(P); len(got) != 0 {
		t.Errorf("Threads(%d) = %v: seeded threads have no creation stack, none listed", P, got)
	}

	// The first event names the seeded table; closing an outside fd is fine.
	apply(a,
		openFile(P, 5, "/tmp/x", 1, 10),
		closeOwn(P, 3, 11),
		exit(P, 101, false, 0, 15),
		dies(P, 20),
	)
	ls := a.Leaks(20)
	checkLeaks(t, a, 20, fileLeak(P, 5, "/tmp/x", 1, 10, 20))
	if len(ls) == 1 && (ls[0].Comm != "python3" || ls[0].Exe != "/usr/bin/python3") {
		t.Errorf("leak comm %q exe %q, want python3 /usr/bin/python3", ls[0].Comm, ls[0].Exe)
	}
	if ps := a.Processes(); !reflect.DeepEqual(ps, []aggregator.ProcessInfo{{PID: P, PPID: 1, Comm: "python3",
		Exe: "/usr/bin/python3", Leaked: 1, Exited: true}}) {
		t.Errorf("Processes() = %+v", ps)
	}
	checkOutstanding(t, a, map[event.StackID]int{})
}

func TestCommAndExe(t *testing.T) {
	const C = 200
	a := aggregator.New(aggregator.Config{})
	o := openFile(P, 3, "/a", 1, 10)
	o.Comm = "sh"
	x := exec(P, bits(0, 1, 2, 3), true, 20)
	x.Comm, x.Exe = "python3", "/usr/bin/python3.13"
	apply(a, o, x, fork(P, C, 9, 30), dies(C, 40), reap(P, C, 41), dies(P, 50))

	byPID := map[uint32]aggregator.Leak{}
	for _, l := range a.Leaks(50) {
		byPID[l.PID] = l
	}
	if len(byPID) != 2 {
		t.Fatalf("leaks by pid = %+v, want one in %d and one in %d", byPID, P, C)
	}
	for _, pid := range []uint32{P, C} {
		if l := byPID[pid]; l.Comm != "python3" || l.Exe != "/usr/bin/python3.13" {
			t.Errorf("leak of %d: comm %q exe %q, want python3 /usr/bin/python3.13", pid, l.Comm, l.Exe)
		}
	}
	want := []aggregator.ProcessInfo{
		{PID: C, PPID: P, Comm: "python3", Exe: "/usr/bin/python3.13", Leaked: 1, Exited: true},
		{PID: P, Comm: "python3", Exe: "/usr/bin/python3.13", Leaked: 1, Exited: true},
	}
	if got := a.Processes(); !reflect.DeepEqual(got, want) {
		t.Errorf("Processes():\ngot  %+v\nwant %+v", got, want)
	}
}

func TestProcessesOrder(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	apply(a,
		openFile(300, 3, "/a", 1, 1),
		openFile(P, 3, "/a", 1, 2),
		fork(P, 200, 9, 3),
		fork(P, 250, 9, 4),
		exit(250, 250, true, 7<<8, 5),
		reap(P, 250, 6),
		dies(300, 7),
	)
	want := []aggregator.ProcessInfo{
		{PID: 250, PPID: P, Exited: true, ExitCode: 7 << 8, Leaked: 1},
		{PID: 300, Exited: true, Leaked: 1},
		{PID: P},
		{PID: 200, PPID: P},
	}
	if got := a.Processes(); !reflect.DeepEqual(got, want) {
		t.Errorf("Processes():\ngot  %+v\nwant %+v", got, want)
	}
	if got := a.LivePIDs(); !reflect.DeepEqual(got, []uint32{P, 200}) {
		t.Errorf("LivePIDs() = %v", got)
	}
	if a.Now() != 7 || a.Events() != 7 {
		t.Errorf("Now() = %d, Events() = %d, want 7, 7", a.Now(), a.Events())
	}
	if a.Live(999) != nil || a.Threads(999) != nil || a.Alive(999) {
		t.Error("an unknown pid has state")
	}
}

// ---- benchmark ----

// BenchmarkApplyOpenClose applies open/close pairs in steady state, with a
// few dozen other fds open as a real process has.
func BenchmarkApplyOpenClose(b *testing.B) {
	a := aggregator.New(aggregator.Config{})
	for fd := int32(3); fd < 40; fd++ {
		e := openFile(P, fd, "/background", 1, 1)
		a.Apply(&e)
	}
	const fds = 8
	var opens, closes [fds]event.Event
	for i := range fds {
		opens[i] = openFile(P, 40+int32(i), "/dev/null", event.StackID(2+i), 0)
		closes[i] = closeOwn(P, 40+int32(i), 0)
	}
	now := uint64(2)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		i := n % fds
		opens[i].Time = now
		a.Apply(&opens[i])
		closes[i].Time = now + 1
		a.Apply(&closes[i])
		now += 2
		n++
	}
	b.ReportMetric(float64(2*n)/b.Elapsed().Seconds(), "events/s")
	if got := len(a.Live(P)); got != 37 {
		b.Fatalf("steady state broken: %d fds live, want 37", got)
	}
}

// ---- fuzzing ----

// decodeEvents turns bytes into a bounded stream of plausible-shaped events
// over a few pids, tids, fds, stacks and tables. Besides events it may
// Seed or Reconcile (returned as closures applied in order).
func decodeEvents(data []byte) []func(a *aggregator.Aggregator) {
	const maxSteps = 256
	var steps []func(a *aggregator.Aggregator)
	now := uint64(0)
	for len(data) >= 4 && len(steps) < maxSteps {
		op, b1, b2, b3 := data[0], data[1], data[2], data[3]
		data = data[4:]
		now += uint64(b3%4) * 100
		pid := uint32(100 + b1%4)
		tid := pid
		if b1&0x10 != 0 {
			tid = 1000 + uint32(b1>>5) // a thread, maybe never created
		}
		fl := files(pid)
		switch (b1 >> 2) & 3 {
		case 1:
			fl = files(100 + uint32(b2>>6)) // another process's table
		case 2:
			fl = 0
		}
		fd := int32(b2 % 16)
		fd2 := int32(b3 % 16)
		stack := event.StackID(b3 >> 5)
		var e event.Event
		switch op % 16 {
		case 0, 1:
			e = open(pid, tid, fl, fd, event.Kind(b3%18), "f", stack, now)
		case 2, 3:
			e = closeFD(pid, tid, fl, fd, now)
		case 4:
			e = dupFD(pid, []uint16{sysDup, sysDup2, sysDup3, sysFcntl}[b3%4], fd, fd2, stack, now)
			e.TID, e.Files = tid, fl
		case 5:
			e = pipe(pid, []uint16{sysPipe, sysPipe2, sysSocketpair}[b3%3], fd, fd2, event.KindPipe, "p", "", stack, now)
			e.TID, e.Files = tid, fl
		case 6:
			var flags uint32
			if b3&0x40 != 0 {
				flags |= event.FlagOnlyCloexec
			}
			if b3&0x80 != 0 {
				flags |= event.FlagUnshare
			}
			e = closeRange(pid, fd, fd+fd2, flags, now)
			e.TID, e.Files = tid, fl
		case 7:
			child := uint32(100 + b3%4)
			cf := files(child)
			switch b3 >> 6 {
			case 1:
				cf = fl // CLONE_FILES
			case 2:
				cf = 0
			}
			e = forkFrom(pid, fl, child, cf, stack, now)
		case 8:
			e = thread(pid, 1000+uint32(b3%8), stack, now)
			e.Files = fl
			if b3&0x80 != 0 {
				e.ChildFiles = files(pid) + 1
			}
		case 9:
			e = exec(pid, []uint64{uint64(b2) | uint64(b3)<<8}, b3&1 == 0, now)
			e.Files = fl
		case 10, 11:
			e = exit(pid, tid, b2&1 != 0, int32(b3&0x8f), now)
			e.Autoreap = b2&2 != 0
		case 12:
			e = exitGroup(pid, tid, int32(b3), now)
		case 13:
			e = reap(pid, uint32(100+b3%4), now)
		case 15:
			e = update(pid, fd, event.Kind(b3%18), "u", now)
			e.TID, e.Files = tid, fl
		case 14:
			fds := []aggregator.SeedFD{}
			for i := range int32(8) {
				if b3&(1<<i) != 0 {
					fds = append(fds, aggregator.SeedFD{FD: i + fd, Kind: event.Kind(b2 % 18)})
				}
			}
			t := now
			if b2&0x80 != 0 {
				steps = append(steps, func(a *aggregator.Aggregator) {
					a.Seed(pid, 1, "s", "/s", fds, []uint32{pid, 1000}, t)
				})
			} else {
				steps = append(steps, func(a *aggregator.Aggregator) { a.Reconcile(pid, fds, t) })
			}
			continue
		}
		steps = append(steps, func(a *aggregator.Aggregator) { a.Apply(&e) })
	}
	return steps
}

func checkInvariants(t *testing.T, a *aggregator.Aggregator, step int) {
	t.Helper()
	for pid := uint32(100); pid < 104; pid++ {
		live := a.Live(pid)
		if !a.Alive(pid) && live != nil {
			t.Fatalf("step %d: Live(%d) of a dead process = %v", step, pid, live)
		}
		for i, h := range live {
			if i > 0 && live[i-1].FD >= h.FD {
				t.Fatalf("step %d: Live(%d) lists fd %d twice or out of order:\n%s", step, pid, h.FD, fmtHandles(live))
			}
			if h.FD < 0 {
				t.Fatalf("step %d: Live(%d) lists fd %d", step, pid, h.FD)
			}
		}
		ths := a.Threads(pid)
		if !slices.IsSorted(ths) || len(slices.Compact(slices.Clone(ths))) != len(ths) {
			t.Fatalf("step %d: Threads(%d) = %v", step, pid, ths)
		}
	}
}

func FuzzApply(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 3, 1, 2, 0, 3, 1, 10, 0, 0, 0})
	// open, fork with CLONE_FILES, child open, exit both
	f.Add([]byte{0, 0, 3, 0x21, 7, 0, 0, 0x41, 0, 1, 4, 0, 10, 1, 1, 0, 10, 0, 1, 0})
	// pipe, dup2, close_range, exec, threads, exit_group
	f.Add([]byte{5, 0, 3, 4, 4, 0, 5, 3, 6, 0, 3, 0x84, 8, 0, 0, 1, 9, 0, 7, 0, 12, 0, 0, 0, 10, 0, 1, 9})
	// seed, reconcile, fork, autoreaped exit, reap
	f.Add([]byte{14, 0, 0x80, 0xff, 7, 0, 0, 1, 10, 1, 3, 0, 13, 0, 0, 1, 14, 0, 2, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := aggregator.New(aggregator.Config{Mode: aggregator.Mode(len(data) % 2), MinAge: 150})
		for i, step := range decodeEvents(data) {
			step(a)
			checkInvariants(t, a, i)
		}
		now := a.Now()
		for _, l := range a.Leaks(now) {
			if l.Reason == "" {
				t.Fatalf("leak without a reason: %+v", l)
			}
		}
		for s, n := range a.Outstanding() {
			if n < 0 {
				t.Fatalf("Outstanding()[%d] = %d", s, n)
			}
		}
		a.Outside()
		a.Processes()
	})
}

// TestLiveProcessesOnePerPid: a pid taken again before its process's exit
// was seen (a fork record naming it while the old one is still live) ends
// the old process without an exit: Processes lists both, not exited, and
// LiveProcesses only the new one, so that live series are one per pid.
func TestLiveProcessesOnePerPid(t *testing.T) {
	const C = 200
	a := aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: sec})
	apply(a,
		fork(P, C, 9, 10),
		openFile(C, 3, "/a", 1, 20),
		fork(P, C, 9, 30), // C again, its first life's exit never seen
	)
	var all, live []uint32
	for _, p := range a.Processes() {
		if p.PID == C && !p.Exited {
			all = append(all, p.PID)
		}
	}
	for _, p := range a.LiveProcesses() {
		live = append(live, p.PID)
	}
	if len(all) != 2 {
		t.Errorf("Processes lists pid %d %d times not exited, want 2 (the ended one and the new one)", C, len(all))
	}
	if !slices.Equal(live, []uint32{P, C}) {
		t.Errorf("LiveProcesses = %v, want [%d %d]", live, P, C)
	}
}

// TestVanished: a process whose exit record was lost, which /proc no longer
// has, ends when the session finds it gone: it no longer counts as live (its
// handles, series and alerts), and is listed gone, not exited, reconciled.
func TestVanished(t *testing.T) {
	const C = 200
	a := aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: sec})
	apply(a,
		fork(P, C, 9, 10),
		openFile(C, 3, "/a", 1, 20),
	)
	if !a.Vanished(C, 5*sec) {
		t.Fatal("Vanished of a live process returned false")
	}
	if a.Alive(C) || slices.Contains(a.LivePIDs(), C) {
		t.Errorf("pid %d still live after Vanished: %v", C, a.LivePIDs())
	}
	if got := a.Live(C); len(got) != 0 {
		t.Errorf("Live(%d) = %v after Vanished", C, got)
	}
	gone, _ := a.TakeExited()
	var found bool
	for _, p := range gone {
		if p.PID == C {
			found = true
			if p.Exited || !p.Reconciled {
				t.Errorf("gone %+v: want not exited, reconciled", p)
			}
		}
	}
	if !found {
		t.Errorf("pid %d not among the gone %+v", C, gone)
	}
	if a.Vanished(C, 6*sec) || a.Vanished(4242, 6*sec) {
		t.Error("Vanished of a process not live returned true")
	}
	if !a.Alive(P) {
		t.Error("the parent ended with its child")
	}
}
