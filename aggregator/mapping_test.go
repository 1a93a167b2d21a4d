package aggregator

import (
	"fmt"
	"testing"

	"github.com/leaktrace/leaktrace/event"
)

const (
	mpid   = 50
	mfiles = 0x5000
	kib    = 1024
	mib    = 1024 * kib
	base   = 0x7f00_0000_0000
)

type mapStream struct {
	t *testing.T
	a *Aggregator
	n uint64
}

func newMapStream(t *testing.T, mode Mode) *mapStream {
	return &mapStream{t: t, a: New(Config{Mode: mode})}
}

func (s *mapStream) ev(e event.Event) {
	s.n++
	e.Time = s.n
	if e.PID == 0 {
		e.PID, e.TID = mpid, mpid
	}
	if e.Files == 0 {
		e.Files = mfiles
	}
	e.FD, e.FD2 = -1, -1
	s.a.Apply(&e)
}

func (s *mapStream) mmap(addr, length uint64, stack event.StackID) {
	s.ev(event.Event{Type: event.MapNew, Addr: addr, Len: length, Stack: stack, Kind: event.KindMapping})
}

func (s *mapStream) munmap(addr, length uint64) {
	s.ev(event.Event{Type: event.MapFree, Addr: addr, Len: length})
}

func (s *mapStream) mremap(old, oldLen, addr, length uint64, flags uint32) {
	s.ev(event.Event{Type: event.MapMove, OldAddr: old, OldLen: oldLen, Addr: addr, Len: length, Flags: flags})
}

// ranges renders pid's ranges as "start-end@stack" (offsets from base, KiB).
func (s *mapStream) ranges(pid uint32) string {
	out := ""
	for _, m := range s.a.Mappings(pid) {
		inh := ""
		if m.Inherited {
			inh = "i"
		}
		if m.Reserved {
			inh += "r"
		}
		out += fmt.Sprintf("[%d-%d@%d%s]", (m.Start-base)/kib, (m.End-base)/kib, m.Stack, inh)
	}
	return out
}

func (s *mapStream) want(ranges string, live map[event.StackID]MappedSite) {
	s.t.Helper()
	if got := s.ranges(mpid); got != ranges {
		s.t.Errorf("ranges %s, want %s", got, ranges)
	}
	got := s.a.MappedLive()
	if len(got) != len(live) {
		s.t.Errorf("live %v, want %v", got, live)
		return
	}
	for id, w := range live {
		if got[id] != w {
			s.t.Errorf("stack %d: %+v, want %+v", id, got[id], w)
		}
	}
}

func TestMappingPartialUnmapAndSplit(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 64*kib, 1)
	s.want("[0-64@1]", map[event.StackID]MappedSite{1: {64 * kib, 1}})
	s.munmap(base, 16*kib) // the head
	s.want("[16-64@1]", map[event.StackID]MappedSite{1: {48 * kib, 1}})
	s.munmap(base+56*kib, 8*kib) // the tail
	s.want("[16-56@1]", map[event.StackID]MappedSite{1: {40 * kib, 1}})
	s.munmap(base+32*kib, 8*kib) // the middle: two pieces keep the site
	s.want("[16-32@1][40-56@1]", map[event.StackID]MappedSite{1: {32 * kib, 2}})
	s.munmap(base, 1*mib) // over both and beyond
	s.want("", map[event.StackID]MappedSite{})
}

func TestMappingRoundsToPages(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 1, 1) // one byte maps a page
	s.want("[0-4@1]", map[event.StackID]MappedSite{1: {4 * kib, 1}})
	s.munmap(base, 100) // and 100 bytes unmap it
	s.want("", map[event.StackID]MappedSite{})
}

func TestMappingUnknownUnmapIgnored(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base+64*kib, 16*kib, 1)
	s.munmap(base, 64*kib) // mapped before tracing: nothing to remove
	s.munmap(base+128*kib, 4*kib)
	s.want("[64-80@1]", map[event.StackID]MappedSite{1: {16 * kib, 1}})
}

func TestMappingFixedOverlap(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 64*kib, 1)
	s.mmap(base+16*kib, 16*kib, 2) // MAP_FIXED into the middle
	s.want("[0-16@1][16-32@2][32-64@1]", map[event.StackID]MappedSite{1: {48 * kib, 2}, 2: {16 * kib, 1}})
	s.mmap(base+8*kib, 48*kib, 3) // over parts of all three
	s.want("[0-8@1][8-56@3][56-64@1]", map[event.StackID]MappedSite{1: {16 * kib, 2}, 3: {48 * kib, 1}})
}

func TestMappingMremap(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 16*kib, 1)
	s.mremap(base, 16*kib, base, 32*kib, 0) // grows in place: the creation site keeps it
	s.want("[0-32@1]", map[event.StackID]MappedSite{1: {32 * kib, 1}})
	s.mremap(base, 32*kib, base+1*mib, 64*kib, 0) // moves and grows
	s.want("[1024-1088@1]", map[event.StackID]MappedSite{1: {64 * kib, 1}})
	s.mremap(base+1*mib, 64*kib, base+1*mib, 8*kib, 0) // shrinks
	s.want("[1024-1032@1]", map[event.StackID]MappedSite{1: {8 * kib, 1}})
	s.mremap(base+1*mib, 8*kib, base+2*mib, 8*kib, event.FlagMapDontUnmap) // the old range stays
	s.want("[1024-1032@1][2048-2056@1]", map[event.StackID]MappedSite{1: {16 * kib, 2}})
	s.mremap(base+4*mib, 8*kib, base+5*mib, 16*kib, 0) // never seen made: stays unknown
	s.want("[1024-1032@1][2048-2056@1]", map[event.StackID]MappedSite{1: {16 * kib, 2}})
}

func TestMappingMremapKeepsPieces(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 8*kib, 1)
	s.mmap(base+8*kib, 8*kib, 2) // the kernel merges them into one vma
	s.mremap(base, 16*kib, base+1*mib, 24*kib, 0)
	s.want("[1024-1032@1][1032-1048@2]", map[event.StackID]MappedSite{1: {8 * kib, 1}, 2: {16 * kib, 1}})
}

func TestMappingBrk(t *testing.T) {
	s := newMapStream(t, ModeRun)
	brk := func(old, now uint64) {
		if now > old {
			s.ev(event.Event{Type: event.MapNew, Addr: old, Len: now - old, Flags: event.FlagMapBrk, Stack: 4})
		} else {
			s.ev(event.Event{Type: event.MapFree, Addr: now, Len: old - now, Flags: event.FlagMapBrk})
		}
	}
	start := uint64(base + 100) // a break need not be page-aligned
	brk(start, start+132*kib)
	// The heap's first page was mapped with the executable's data: the
	// growth is from the page after the old break.
	s.want("[4-136@4]", map[event.StackID]MappedSite{4: {132 * kib, 1}})
	brk(start+132*kib, start+132*kib+10) // within the last page: nothing new
	s.want("[4-136@4]", map[event.StackID]MappedSite{4: {132 * kib, 1}})
	brk(start+132*kib+10, start+64*kib) // shrinks from the top
	s.want("[4-68@4]", map[event.StackID]MappedSite{4: {64 * kib, 1}})
	if got := s.a.Mappings(mpid)[0].Target; got != "[heap]" {
		t.Errorf("target %q, want [heap]", got)
	}
}

func TestMappingExecAndExit(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 16*kib, 1)
	s.ev(event.Event{Type: event.Exec, OpenFDs: []uint64{7}, OpenFDsComplete: true})
	s.want("", map[event.StackID]MappedSite{})
	if got := s.a.MappedAtExit(); len(got) != 0 {
		t.Errorf("exec counted as exit: %v", got)
	}
	s.mmap(base, 16*kib, 2)
	s.mmap(base+1*mib, 4*kib, 2)
	s.ev(event.Event{Type: event.TaskExit, ChildPID: mpid, ChildTID: mpid, GroupDead: true})
	if got := s.a.MappedLive(); len(got) != 0 {
		t.Errorf("live after exit: %v", got)
	}
	got := s.a.MappedAtExit()
	if want := (MappedSite{20 * kib, 2}); len(got) != 1 || got[2] != want {
		t.Errorf("at exit %v, want 2: %+v", got, want)
	}
	if tg := s.a.MappedAtExitTargets()[2]; len(tg) != 1 || tg[0] != "[anon]" {
		t.Errorf("targets %v", tg)
	}
}

func TestMappingForkInherits(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 16*kib, 1)
	const child = 51
	s.ev(event.Event{Type: event.TaskNew, ChildPID: child, ChildTID: child, ChildFiles: 0x5100, Kind: event.KindProcess, Stack: 9})
	s.ev(event.Event{Type: event.MapFree, PID: child, TID: child, Files: 0x5100, Addr: base, Len: 4 * kib})
	s.ev(event.Event{Type: event.MapNew, PID: child, TID: child, Files: 0x5100, Addr: base + 1*mib, Len: 8 * kib, Stack: 3})
	if got := s.ranges(child); got != "[4-16@1i][1024-1032@3]" {
		t.Errorf("child ranges %s", got)
	}
	// The parent's bytes are unchanged by the child's munmap; the child's
	// copies are not its creations.
	s.want("[0-16@1]", map[event.StackID]MappedSite{1: {16 * kib, 1}, 3: {8 * kib, 1}})
	if got := s.a.MappedInherited(); got != 12*kib {
		t.Errorf("inherited %d, want %d", got, 12*kib)
	}
	s.ev(event.Event{Type: event.TaskExit, PID: child, TID: child, Files: 0x5100, ChildPID: child, ChildTID: child, GroupDead: true})
	if got := s.a.MappedAtExit(); len(got) != 1 || got[3].Bytes != 8*kib {
		t.Errorf("at exit %v: only the child's own mapping", got)
	}
}

func TestMappingThreadsShareProcess(t *testing.T) {
	s := newMapStream(t, ModeAttach)
	s.ev(event.Event{Type: event.TaskNew, ChildPID: mpid, ChildTID: mpid + 1, ChildFiles: mfiles, IsThread: true, Kind: event.KindThread, Stack: 8})
	s.ev(event.Event{Type: event.MapNew, TID: mpid + 1, PID: mpid, Addr: base, Len: 8 * kib, Stack: 2})
	s.munmap(base, 4*kib) // by the main thread
	s.want("[4-8@2]", map[event.StackID]MappedSite{2: {4 * kib, 1}})
	if _, ok := s.a.StacksInUse()[2]; !ok {
		t.Error("a mapping's stack is not in use")
	}
}

// TestMappingChurnAllocatesNothing: an mmap and munmap pair in a process with
// other mappings allocates nothing once warm, as open and close do.
func TestMappingChurnAllocatesNothing(t *testing.T) {
	a := New(Config{})
	newE := event.Event{Type: event.MapNew, PID: mpid, TID: mpid, Files: mfiles, FD: -1, FD2: -1, Len: 64 * kib, Stack: 1}
	freeE := event.Event{Type: event.MapFree, PID: mpid, TID: mpid, Files: mfiles, FD: -1, FD2: -1, Len: 64 * kib}
	for i := range 100 {
		newE.Addr = base + uint64(i)*mib
		a.Apply(&newE)
	}
	churn := func() {
		newE.Addr, freeE.Addr = base-mib, base-mib
		a.Apply(&newE)
		a.Apply(&freeE)
	}
	churn()
	if n := testing.AllocsPerRun(1000, churn); n != 0 {
		t.Errorf("%v allocations per mmap+munmap", n)
	}
}

func BenchmarkApplyMmapMunmap(b *testing.B) {
	a := New(Config{})
	newE := event.Event{Type: event.MapNew, PID: mpid, TID: mpid, Files: mfiles, FD: -1, FD2: -1, Len: 64 * kib, Stack: 1}
	freeE := event.Event{Type: event.MapFree, PID: mpid, TID: mpid, Files: mfiles, FD: -1, FD2: -1, Len: 64 * kib}
	for i := range 200 {
		newE.Addr = base + uint64(i)*mib
		a.Apply(&newE)
	}
	newE.Addr, freeE.Addr = base-mib, base-mib
	b.ReportAllocs()
	for b.Loop() {
		a.Apply(&newE)
		a.Apply(&freeE)
	}
}

// TestMappingPythonShutdown: what the interpreter unmaps as it finalizes was
// still held by the program at its end; what finalization itself mapped is
// its own.
func TestMappingPythonShutdown(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 64*kib, 1)
	s.mmap(base+1*mib, 16*kib, 2)
	s.munmap(base+1*mib, 16*kib) // by the program: released
	s.ev(event.Event{Type: event.MapNew, Addr: base + 2*mib, Len: 8 * kib, Stack: 3, Flags: event.FlagPyFinalizing})
	s.ev(event.Event{Type: event.MapFree, Addr: base, Len: 64 * kib, Flags: event.FlagPyShutdown})
	s.ev(event.Event{Type: event.MapFree, Addr: base + 2*mib, Len: 8 * kib, Flags: event.FlagPyShutdown})
	s.want("", map[event.StackID]MappedSite{})
	got := s.a.MappedAtExit()
	if len(got) != 1 || got[1] != (MappedSite{64 * kib, 1}) {
		t.Errorf("at exit %v, want only stack 1's 64 KiB", got)
	}
}

func TestMappingReconcile(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.mmap(base, 64*kib, 1)
	s.mmap(base+1*mib, 16*kib, 2)
	s.mmap(base+2*mib, 16*kib, 3)
	// Lost: munmap of base+16K..+32K, of all of stack 2's, and stack 3's tail.
	s.a.ReconcileMaps(mpid, []Span{{base - 1*mib, base + 16*kib}, {base + 32*kib, base + 512*kib}, {base + 2*mib, base + 2*mib + 8*kib}})
	s.want("[0-16@1][32-64@1][2048-2056@3]", map[event.StackID]MappedSite{1: {48 * kib, 2}, 3: {8 * kib, 1}})
	if s.a.ReconcileMaps(99, nil) {
		t.Error("reconciled a process never seen")
	}
}

// TestMappingReserved: PROT_NONE reserves address space, not memory: it
// is kept but counted nowhere. Mapped accessible over it (Go's sysMap) or
// made accessible by mprotect (glibc growing a thread's heap), it counts at
// the site that did so; made PROT_NONE again (Go's sysFault), it stops.
func TestMappingReserved(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.ev(event.Event{Type: event.MapNew, Addr: base, Len: 64 * mib, Stack: 1, Flags: event.FlagMapReserved})
	s.want("[0-65536@1r]", map[event.StackID]MappedSite{})
	s.mmap(base, 4*mib, 2) // MAP_FIXED, read-write
	s.ev(event.Event{Type: event.MapNew, Addr: base + 1*mib, Len: 1 * mib, Stack: 3, Flags: event.FlagMapReserved})
	s.want("[0-1024@2][1024-2048@3r][2048-4096@2][4096-65536@1r]", map[event.StackID]MappedSite{2: {3 * mib, 2}})

	// mprotect read-write over [3 MiB, 6 MiB): the reserved 2 MiB of it
	// become stack 4's; the accessible 1 MiB keeps stack 2.
	prot := event.Event{Type: event.MapProt, Addr: base + 3*mib, Len: 3 * mib, Stack: 4}
	s.ev(prot)
	s.want("[0-1024@2][1024-2048@3r][2048-4096@2][4096-6144@4][6144-65536@1r]",
		map[event.StackID]MappedSite{2: {3 * mib, 2}, 4: {2 * mib, 1}})
	// mprotect PROT_NONE over [0, 5 MiB): all of it reserved again.
	s.ev(event.Event{Type: event.MapProt, Addr: base, Len: 5 * mib, Flags: event.FlagMapReserved})
	s.want("[0-1024@2r][1024-2048@3r][2048-4096@2r][4096-5120@4r][5120-6144@4][6144-65536@1r]",
		map[event.StackID]MappedSite{4: {1 * mib, 1}})
	// mprotect over what was never seen made: unknown still.
	s.ev(event.Event{Type: event.MapProt, Addr: base + 100*mib, Len: mib, Stack: 4})
	s.ev(event.Event{Type: event.TaskExit, ChildPID: mpid, ChildTID: mpid, GroupDead: true})
	if got := s.a.MappedAtExit(); len(got) != 1 || got[4].Bytes != 1*mib {
		t.Errorf("at exit %v: reserved ranges are no memory", got)
	}
}

// TestMappingMerges: a heap grown page by page, or mappings placed side by
// side by one site, are one range: memory follows what is mapped, not how
// often it grew.
func TestMappingMerges(t *testing.T) {
	s := newMapStream(t, ModeRun)
	s.ev(event.Event{Type: event.MapNew, Addr: base, Len: 64 * mib, Stack: 1, Flags: event.FlagMapReserved})
	for i := range 1000 {
		s.ev(event.Event{Type: event.MapProt, Addr: base + uint64(i)*4*kib, Len: 4 * kib, Stack: 2})
	}
	s.mmap(base+64*mib+64*kib, 64*kib, 3)
	s.mmap(base+64*mib, 64*kib, 3)
	s.mmap(base+64*mib+128*kib, 64*kib, 4)
	s.want("[0-4000@2][4000-65536@1r][65536-65664@3][65664-65728@4]",
		map[event.StackID]MappedSite{2: {4000 * kib, 1}, 3: {128 * kib, 1}, 4: {64 * kib, 1}})
}
