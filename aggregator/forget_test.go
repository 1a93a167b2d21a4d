package aggregator

import (
	"testing"

	"github.com/leaktrace/leaktrace/event"
)

func TestTakeExitedForgets(t *testing.T) {
	a := New(Config{Mode: ModeAttach})
	for pid := uint32(100); pid < 110; pid++ {
		a.Apply(&event.Event{Type: event.FDOpen, PID: pid, TID: pid, Files: uint64(pid), Time: 1, FD: 5, FD2: -1, Kind: event.KindFile, Stack: 1})
		a.Apply(&event.Event{Type: event.TaskExit, PID: pid, TID: pid, ChildTID: pid, GroupDead: true, Time: 2})
	}
	if h := a.Held(); h.Processes != 10 || h.Handles != 10 {
		t.Fatalf("held at exit: %d processes, %d handles; want 10, 10", h.Processes, h.Handles)
	}
	gone, leaks := a.TakeExited()
	if len(gone) != 10 || len(leaks) != 0 {
		t.Fatalf("took %d processes, %d leaks; want 10, 0 (attach: held at exit is no leak)", len(gone), len(leaks))
	}
	if gone[0].PID != 100 || !gone[0].Exited || gone[0].HeldAtExit != 1 || gone[0].Leaked != 0 {
		t.Fatalf("first = %+v", gone[0])
	}
	gone, leaks = a.TakeExited()
	if h := a.Held(); h.Handles != 0 || len(h.Stacks) != 0 {
		t.Fatalf("held sums kept after TakeExited: %+v", h)
	}
	if len(gone) != 0 || len(leaks) != 0 || len(a.Processes()) != 0 || len(a.Outstanding()) != 0 {
		t.Fatalf("state kept after TakeExited: %d gone, %d leaks, %d processes, %d sites", len(gone), len(leaks), len(a.Processes()), len(a.Outstanding()))
	}
}

func TestUsage(t *testing.T) {
	a := New(Config{Mode: ModeAttach})
	a.Seed(7, 1, "svc", "/bin/svc", []SeedFD{{FD: 0, Kind: event.KindFile}, {FD: 3, Kind: event.KindSocket}}, []uint32{7}, 1)
	a.Apply(&event.Event{Type: event.FDOpen, PID: 7, TID: 7, Files: 0x70, Time: 2, FD: 4, FD2: 5, Install: event.InstallPair, Kind: event.KindPipe})
	a.Apply(&event.Event{Type: event.TaskNew, PID: 7, TID: 7, Files: 0x70, Time: 3, ChildPID: 7, ChildTID: 8, ChildFiles: 0x70, IsThread: true, Kind: event.KindThread})
	a.Apply(&event.Event{Type: event.TaskNew, PID: 7, TID: 7, Files: 0x70, Time: 3, ChildPID: 9, ChildTID: 9, ChildFiles: 0x90, Kind: event.KindProcess})
	a.Apply(&event.Event{Type: event.TaskExit, PID: 9, TID: 9, ChildTID: 9, GroupDead: true, Time: 4})
	u, ok := a.Usage(7)
	if !ok {
		t.Fatal("pid 7 not live")
	}
	want := Usage{Open: 4, Threads: 1, Children: 1, Zombies: 1}
	want.FDs[event.KindFile], want.FDs[event.KindSocket], want.FDs[event.KindPipe] = 1, 1, 2
	if u != want {
		t.Fatalf("usage = %+v, want %+v", u, want)
	}
	if _, ok := a.Usage(9); ok {
		t.Fatal("exited pid 9 has usage")
	}
}

func TestStacksInUse(t *testing.T) {
	a := New(Config{Mode: ModeAttach})
	open := func(pid uint32, fd int32, stack event.StackID) {
		a.Apply(&event.Event{Type: event.FDOpen, PID: pid, TID: pid, Files: uint64(pid), Time: 1, FD: fd, FD2: -1, Kind: event.KindFile, Stack: stack})
	}
	open(7, 3, 1)
	open(7, 4, 2)
	a.Apply(&event.Event{Type: event.FDClose, PID: 7, TID: 7, Files: 7, Time: 2, FD: 4}) // before the fork: no copy of it
	a.Apply(&event.Event{Type: event.TaskNew, PID: 7, TID: 7, Files: 7, Time: 2, ChildPID: 7, ChildTID: 8, ChildFiles: 7, IsThread: true, Kind: event.KindThread, Stack: 3})
	a.Apply(&event.Event{Type: event.TaskNew, PID: 7, TID: 7, Files: 7, Time: 2, ChildPID: 9, ChildTID: 9, ChildFiles: 9, Kind: event.KindProcess, Stack: 4})
	a.Apply(&event.Event{Type: event.TaskExit, PID: 9, TID: 9, ChildTID: 9, GroupDead: true, Time: 3}) // a zombie: still held
	open(10, 5, 5)
	a.Apply(&event.Event{Type: event.TaskExit, PID: 10, TID: 10, ChildTID: 10, GroupDead: true, Time: 3}) // held at exit, not yet taken

	in := a.StacksInUse()
	for _, id := range []event.StackID{1, 3, 4, 5} {
		if _, ok := in[id]; !ok {
			t.Errorf("stack %d not in use; in use: %v", id, in)
		}
	}
	if _, ok := in[2]; ok {
		t.Error("stack 2 in use after its only fd was closed")
	}
	// Past the leaks, it agrees with the per-stack counts.
	a.TakeExited()
	in = a.StacksInUse()
	for id := range a.Outstanding() {
		if _, ok := in[id]; !ok && id != 0 {
			t.Errorf("stack %d outstanding but not in use", id)
		}
	}
	if _, ok := in[5]; ok || len(in) != len(a.Outstanding()) {
		t.Errorf("in use %v, outstanding %v", in, a.Outstanding())
	}
}
