package aggregator_test

import (
	"testing"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
)

// Reap must release the child handle's count in Outstanding().
func TestOutstandingAfterReap(t *testing.T) {
	a := aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: sec})
	apply(a, fork(P, 200, 9, 10))
	checkOutstanding(t, a, map[event.StackID]int{9: 1})
	apply(a, dies(200, 20), reap(P, 200, 30))
	checkOutstanding(t, a, map[event.StackID]int{})
	for i := uint32(0); i < 10; i++ { // subprocess.run in a loop
		apply(a, fork(P, 300+i, 9, 40+uint64(i)*10), dies(300+i, 41+uint64(i)*10), reap(P, 300+i, 42+uint64(i)*10))
	}
	checkOutstanding(t, a, map[event.StackID]int{})
}

// Autoreap leaves a zero entry.
func TestOutstandingAfterAutoreapHasNoZeroEntry(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	apply(a, fork(P, 200, 9, 10), autoreaped(200, 20))
	if got := a.Outstanding(); len(got) != 0 {
		t.Errorf("Outstanding() = %v, want empty", got)
	}
}

// A CLONE_FILES child that execs gets a private copy: its fds are its own.
func TestCloneFilesChildExecOwnsItsCopy(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	apply(a,
		openFile(P, 3, "/a", 1, 10),
		cloneFiles(P, 200, 9, 20),
		exec(200, bits(0, 1, 2, 3), true, 30), // new files_struct: files(200)
		closeOwn(P, 3, 40),
	)
	for _, h := range a.Live(200) {
		if h.FD == 3 && h.PID != 200 {
			t.Errorf("Live(200) fd 3 has PID %d, want 200", h.PID)
		}
	}
	apply(a, dies(200, 50))
	for _, l := range a.Leaks(50) {
		if l.FD == 3 && l.PID != 200 {
			t.Errorf("leak of fd 3 at 200's exit attributed to pid %d (comm of %q), want 200", l.PID, l.Comm)
		}
	}
	for _, p := range a.Processes() {
		if p.PID == P && p.Leaked != 0 {
			t.Errorf("process %d Leaked = %d, want 0 (it closed its fd 3)", P, p.Leaked)
		}
	}
}

func TestCloneFilesChildExecAttach(t *testing.T) {
	a := aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: 5 * sec})
	apply(a,
		openFile(P, 3, "/a", 1, 1*sec),
		cloneFiles(P, 200, 9, 2*sec),
		exec(200, bits(0, 1, 2, 3), true, 3*sec),
		closeOwn(P, 3, 4*sec),
	)
	n := 0
	for _, l := range a.Leaks(20 * sec) {
		if l.FD == 3 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("fd 3 held by 200 for 17s: %d outstanding leaks, want 1; Live(200) = %v", n, a.Live(200))
	}
}

// Attach: the creator of an fd in a shared table exited; the table lives on.
func TestCloneFilesCreatorGoneAttach(t *testing.T) {
	a := aggregator.New(aggregator.Config{Mode: aggregator.ModeAttach, MinAge: 5 * sec})
	apply(a,
		openFile(P, 3, "/p", 1, 1*sec),
		closeOwn(P, 3, 1*sec+1),
		cloneFiles(P, 200, 9, 1*sec+2),
		open(200, 200, files(P), 5, event.KindFile, "/b", 2, 2*sec),
		dies(200, 3*sec),
		reap(P, 200, 3*sec+1),
	)
	checkLive(t, a, P, fileH(200, 5, "/b", 2, 2*sec))
	n := 0
	for _, l := range a.Leaks(20 * sec) {
		if l.FD == 5 && l.Reason == aggregator.ReasonOutstanding {
			n++
		}
	}
	if n != 1 {
		t.Errorf("fd 5 open 18s in %d's table: %d outstanding leaks, want 1; Outstanding() = %v", P, n, a.Outstanding())
	}
}

// close_range(CLOSE_RANGE_UNSHARE) in a multi-threaded process.
func TestCloseRangeUnshareWithThreads(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	apply(a,
		thread(P, 101, 5, 5),
		openFile(P, 10, "/a", 1, 10),
		openFile(P, 11, "/b", 2, 11),
		closeRange(P, 10, 10, event.FlagUnshare, 20),
		open(P, P, files(P)+1, 12, event.KindFile, "/c", 3, 30), // the kernel's new table
	)
	checkLive(t, a, P, fileH(P, 11, "/b", 2, 11), fileH(P, 12, "/c", 3, 30))
	checkOutstanding(t, a, map[event.StackID]int{2: 1, 3: 1, 5: 1})
	apply(a, exit(P, 101, false, 0, 35), dies(P, 40))
	checkOutstanding(t, a, map[event.StackID]int{})
}

// A process whose files_struct changes while the aggregator knows no other
// user of the old one (attach target sharing its table with an untraced
// process, then exec): the copied handles must not be judged at time 0.
func TestTableCopyIsNotAnExit(t *testing.T) {
	a := aggregator.New(aggregator.Config{})
	a.Seed(P, 1, "app", "/bin/app", nil, nil, 1)
	x := exec(P, bits(0, 1, 2, 3), true, 20)
	x.Files = files(P) + 1 // exec unshared the table
	apply(a, openFile(P, 3, "/a", 1, 10), x, dies(P, 30))
	checkLeaks(t, a, 30, fileLeak(P, 3, "/a", 1, 10, 30))
}
