package aggregator

import (
	"slices"
	"sort"

	"github.com/leaktrace/leaktrace/event"
)

// Memory mappings are handles of their own kind: a range of a process's
// address space, made by mmap or by brk growing the heap, with the stack
// that asked for it. They are not fd leaks: what a site still has mapped is
// summed in bytes (MappedLive, MappedAtExit), never added to Leaks.
//
// Each process keeps its traced ranges in one slice sorted by start, with no
// overlaps: the kernel's own view of the ranges it made, piece by piece. A
// range the kernel unmaps that we never saw made (mapped before tracing, by
// exec or the dynamic loader before attach) is simply not there to remove.

// pageSize is x86-64's: syscall ranges are rounded to it as the kernel does.
const pageSize = 4096

func pageDown(a uint64) uint64 { return a &^ (pageSize - 1) }

func pageUp(a uint64) uint64 {
	if a > ^uint64(0)-(pageSize-1) {
		return pageDown(a) // no mapping reaches the top page: keep the order
	}
	return (a + pageSize - 1) &^ (pageSize - 1)
}

// mapping is one traced range [start, end) of a process's address space.
type mapping struct {
	start, end uint64
	created    uint64
	stack      event.StackID
	// inherited: a copy made at fork; the parent's creation, not the child's.
	inherited bool
	// finalizing: made once Python finalization had begun; the
	// interpreter's shutdown unmapping it is no sign the program held it.
	finalizing bool
	// reserved: PROT_NONE, address space and no memory: counted nowhere
	// until mprotect makes it accessible (at that call's site).
	reserved bool
	target   string
}

// Mapping is a traced range, as tests and callers see it.
type Mapping struct {
	Start, End uint64
	Stack      event.StackID
	Inherited  bool
	Reserved   bool // PROT_NONE: address space, not memory; in no site's bytes
	Target     string
	Created    uint64
}

// MappedSite is what one creating stack has mapped: bytes, and the ranges
// (pieces) they are in.
type MappedSite struct {
	Bytes    uint64
	Mappings int
}

func (a *Aggregator) account(m *mapping, bytes uint64, pieces int) {
	if m.inherited || m.reserved {
		return
	}
	s := a.mapLive[m.stack]
	s.Bytes += bytes
	s.Mappings += pieces
	a.mapLive[m.stack] = s
}

func (a *Aggregator) unaccount(m *mapping, bytes uint64, pieces int) {
	if m.inherited || m.reserved {
		return
	}
	s, ok := a.mapLive[m.stack]
	if !ok {
		return
	}
	s.Bytes -= min(bytes, s.Bytes)
	s.Mappings -= min(pieces, s.Mappings)
	if s.Bytes == 0 && s.Mappings == 0 {
		delete(a.mapLive, m.stack)
		return
	}
	a.mapLive[m.stack] = s
}

// cut takes bytes (and pieces ranges) of m away. shutdown: the Python
// interpreter's finalization unmapped them, so the program still held them
// at its end: they count as held at exit, as fds it closes then do.
func (a *Aggregator) cut(m *mapping, bytes uint64, pieces int, shutdown bool) {
	a.unaccount(m, bytes, pieces)
	if shutdown && !m.inherited && !m.finalizing && !m.reserved {
		a.holdMapped(m, bytes)
	}
}

// holdMapped adds bytes of m to what processes had mapped at their end.
func (a *Aggregator) holdMapped(m *mapping, bytes uint64) {
	s := a.mapHeld[m.stack]
	s.Bytes += bytes
	s.Mappings++
	a.mapHeld[m.stack] = s
	if t := a.mapHeldTargets[m.stack]; len(t) < maxHeldExamples && !slices.Contains(t, m.target) {
		a.mapHeldTargets[m.stack] = append(t, m.target)
	}
}

// unmap removes [lo, hi) from p's ranges: a range inside it goes, one that
// overlaps an end is cut, one that holds it is split in two pieces that both
// keep their creation.
func (a *Aggregator) unmap(p *process, lo, hi uint64, shutdown bool) {
	if lo >= hi {
		return
	}
	ms := p.maps
	i := sort.Search(len(ms), func(i int) bool { return ms[i].end > lo })
	for i < len(ms) && ms[i].start < hi {
		m := &ms[i]
		switch {
		case m.start >= lo && m.end <= hi:
			a.cut(m, m.end-m.start, 1, shutdown)
			ms = slices.Delete(ms, i, i+1)
			continue
		case m.start < lo && m.end > hi:
			a.cut(m, hi-lo, 0, shutdown)
			right := *m
			right.start = hi
			m.end = lo
			a.account(&right, 0, 1)
			ms = slices.Insert(ms, i+1, right)
			p.maps = ms
			return
		case m.start < lo:
			a.cut(m, m.end-lo, 0, shutdown)
			m.end = lo
		default:
			a.cut(m, hi-m.start, 0, shutdown)
			m.start = hi
		}
		i++
	}
	p.maps = ms
}

// mapRange adds m to p's ranges, first removing what it replaces (MAP_FIXED
// over an existing mapping).
func (a *Aggregator) mapRange(p *process, m mapping) {
	if m.start >= m.end {
		return
	}
	a.unmap(p, m.start, m.end, false)
	i := sort.Search(len(p.maps), func(i int) bool { return p.maps[i].start >= m.end })
	p.maps = slices.Insert(p.maps, i, m)
	a.account(&p.maps[i], m.end-m.start, 1)
	// One range with its neighbours when they are the same creation's
	// continuation (a heap grown page by page, mappings placed side by
	// side): memory stays bounded by what is mapped, not by how often.
	if i+1 < len(p.maps) && a.merge(&p.maps[i], &p.maps[i+1]) {
		p.maps = slices.Delete(p.maps, i+1, i+2)
	}
	if i > 0 && a.merge(&p.maps[i-1], &p.maps[i]) {
		p.maps = slices.Delete(p.maps, i, i+1)
	}
}

// merge extends lo over hi, adjacent and of the same site, kind and state,
// and reports whether it did (hi is then to be removed).
func (a *Aggregator) merge(lo, hi *mapping) bool {
	if lo.end != hi.start || lo.stack != hi.stack || lo.inherited != hi.inherited || lo.reserved != hi.reserved ||
		lo.finalizing != hi.finalizing || lo.target != hi.target {
		return false
	}
	lo.end = hi.end
	lo.created = min(lo.created, hi.created)
	a.unaccount(hi, 0, 1)
	return true
}

// eventRange is the page range an event names. brk's are break values, not
// page-aligned: the heap ends at the page the break is in.
func eventRange(addr, length uint64, brk bool) (uint64, uint64) {
	end := addr + length
	if end < addr {
		end = ^uint64(0)
	}
	lo := pageDown(addr)
	if brk {
		lo = pageUp(addr)
	}
	return lo, pageUp(end)
}

func mapTarget(e *event.Event) string {
	if e.Target != "" {
		return e.Target
	}
	if e.Flags&event.FlagMapBrk != 0 {
		return "[heap]"
	}
	return "[anon]"
}

func (a *Aggregator) mapNew(e *event.Event) {
	p := a.proc(e)
	lo, hi := eventRange(e.Addr, e.Len, e.Flags&event.FlagMapBrk != 0)
	// PROT_NONE reserves address space (Go's arenas, guard pages, glibc's
	// thread heaps): kept, so that mprotect can make parts of it memory,
	// but counted nowhere.
	a.mapRange(p, mapping{start: lo, end: hi, created: e.Time, stack: e.Stack, target: mapTarget(e),
		finalizing: e.Flags&event.FlagPyFinalizing != 0, reserved: e.Flags&event.FlagMapReserved != 0})
}

func (a *Aggregator) mapFree(e *event.Event) {
	p := a.proc(e)
	lo, hi := eventRange(e.Addr, e.Len, e.Flags&event.FlagMapBrk != 0)
	a.unmap(p, lo, hi, e.Flags&event.FlagPyShutdown != 0)
}

// mapMove applies mremap: the pieces of the old range move to the new one,
// keeping their creation; growth belongs to the piece at the old range's
// end. A range we never saw made stays unknown.
func (a *Aggregator) mapMove(e *event.Event) {
	p := a.proc(e)
	olo, ohi := eventRange(e.OldAddr, e.OldLen, false)
	nlo, nhi := eventRange(e.Addr, e.Len, false)
	moved := a.mapScratch[:0]
	ms := p.maps
	for i := sort.Search(len(ms), func(i int) bool { return ms[i].end > olo }); i < len(ms) && ms[i].start < ohi; i++ {
		m := ms[i]
		m.start, m.end = max(m.start, olo), min(m.end, ohi)
		if m.start < m.end {
			moved = append(moved, m)
		}
	}
	a.mapScratch = moved
	if e.Flags&event.FlagMapDontUnmap == 0 {
		a.unmap(p, olo, ohi, false)
	}
	a.unmap(p, nlo, nhi, false)
	for i, m := range moved {
		m.start = m.start - olo + nlo
		m.end = m.end - olo + nlo
		if i == len(moved)-1 && m.end == ohi-olo+nlo {
			m.end = nhi // grew: the last piece takes the new pages
		}
		m.start, m.end = max(m.start, nlo), min(m.end, nhi)
		a.mapRange(p, m)
	}
	clear(a.mapScratch)
}

// mapProt applies mprotect to the traced pieces in its range: reserved ones
// made accessible become memory of the calling site (glibc grows a thread's
// heap so); accessible ones made PROT_NONE become reserved. Accessible ones
// made otherwise accessible keep their creation, and what we never saw made
// stays unknown.
func (a *Aggregator) mapProt(e *event.Event) {
	p := a.proc(e)
	lo, hi := eventRange(e.Addr, e.Len, false)
	reserve := e.Flags&event.FlagMapReserved != 0
	pieces := a.mapScratch[:0]
	ms := p.maps
	for i := sort.Search(len(ms), func(i int) bool { return ms[i].end > lo }); i < len(ms) && ms[i].start < hi; i++ {
		m := ms[i]
		m.start, m.end = max(m.start, lo), min(m.end, hi)
		if m.start < m.end && m.reserved != reserve {
			pieces = append(pieces, m)
		}
	}
	a.mapScratch = pieces
	for _, m := range pieces {
		a.unmap(p, m.start, m.end, false)
		if reserve {
			m.reserved = true
		} else {
			m = mapping{start: m.start, end: m.end, created: e.Time, stack: e.Stack, target: m.target,
				finalizing: e.Flags&event.FlagPyFinalizing != 0}
		}
		a.mapRange(p, m)
	}
	clear(a.mapScratch)
}

// unmapAll ends every range of p (exec, exit); atExit sums what p made itself
// into the held-at-exit bytes of each site.
func (a *Aggregator) unmapAll(p *process, atExit bool) {
	for i := range p.maps {
		m := &p.maps[i]
		a.unaccount(m, m.end-m.start, 1)
		if atExit && !m.inherited && !m.reserved {
			a.holdMapped(m, m.end-m.start)
		}
	}
	clear(p.maps)
	p.maps = p.maps[:0]
}

// inheritMaps gives a forked child copies of the parent's ranges, marked
// inherited: the child's munmap of them is then known, but they are never
// the child's creations.
func (a *Aggregator) inheritMaps(parent, child *process) {
	if len(parent.maps) == 0 {
		return
	}
	child.maps = make([]mapping, len(parent.maps))
	copy(child.maps, parent.maps)
	for i := range child.maps {
		child.maps[i].inherited = true
	}
}

// Mappings returns pid's traced ranges, by address.
func (a *Aggregator) Mappings(pid uint32) []Mapping {
	p := a.procs[pid]
	if p == nil {
		return nil
	}
	out := make([]Mapping, len(p.maps))
	for i, m := range p.maps {
		out[i] = Mapping{Start: m.start, End: m.end, Stack: m.stack, Inherited: m.inherited, Reserved: m.reserved, Target: m.target, Created: m.created}
	}
	return out
}

// MappedLive returns, per creating stack, what live processes have mapped
// now of their own making (inherited copies are the parent's).
func (a *Aggregator) MappedLive() map[event.StackID]MappedSite {
	out := make(map[event.StackID]MappedSite, len(a.mapLive))
	for id, s := range a.mapLive {
		out[id] = s
	}
	return out
}

// MappedAtExit returns, per creating stack, what processes had mapped of
// their own making when they exited (run: what was outstanding at the end).
func (a *Aggregator) MappedAtExit() map[event.StackID]MappedSite {
	out := make(map[event.StackID]MappedSite, len(a.mapHeld))
	for id, s := range a.mapHeld {
		out[id] = s
	}
	return out
}

// MappedAtExitTargets returns a few targets of what each stack's ranges
// were when their processes exited.
func (a *Aggregator) MappedAtExitTargets() map[event.StackID][]string {
	out := make(map[event.StackID][]string, len(a.mapHeldTargets))
	for id, t := range a.mapHeldTargets {
		out[id] = append([]string(nil), t...)
	}
	return out
}

// MappedInherited is the bytes live processes hold as copies made at fork.
func (a *Aggregator) MappedInherited() uint64 {
	var n uint64
	for _, p := range a.procs {
		for _, m := range p.maps {
			if m.inherited && !m.reserved {
				n += m.end - m.start
			}
		}
	}
	return n
}

// MappedTargets returns a few targets ("[heap]", "[anon]", a file name) of
// each stack's live ranges, for reports.
func (a *Aggregator) MappedTargets(max int) map[event.StackID][]string {
	out := make(map[event.StackID][]string)
	for _, p := range a.procs {
		for _, m := range p.maps {
			if m.inherited || m.reserved {
				continue
			}
			t := out[m.stack]
			if len(t) < max && !slices.Contains(t, m.target) {
				out[m.stack] = append(t, m.target)
			}
		}
	}
	return out
}

// Span is a range of addresses [Start, End), as /proc/PID/maps lists them.
type Span struct {
	Start, End uint64
}

// ReconcileMaps drops from pid's traced ranges what the kernel no longer
// maps, after events were lost: spans are /proc/PID/maps, sorted. What is
// still mapped keeps its site (an unmap and map again that were both lost
// cannot be told apart from it).
func (a *Aggregator) ReconcileMaps(pid uint32, spans []Span) bool {
	p := a.procs[pid]
	if p == nil {
		return false
	}
	if len(p.maps) == 0 {
		return true
	}
	at, hi := p.maps[0].start, p.maps[len(p.maps)-1].end
	for _, s := range spans {
		if at >= hi {
			break
		}
		if s.End <= at {
			continue
		}
		if s.Start > at {
			a.unmap(p, at, min(s.Start, hi), false)
		}
		at = max(at, s.End)
	}
	if at < hi {
		a.unmap(p, at, hi, false)
	}
	return true
}
