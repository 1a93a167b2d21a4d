package aggregator

import (
	"sort"

	"github.com/leaktrace/leaktrace/event"
)

// SeedFD is an fd found open in /proc before tracing began.
type SeedFD struct {
	FD     int32
	Kind   event.Kind
	Target string
}

// Seed registers a process that was already running when tracing began (the
// attach target, or `run`'s command stopped right after its exec): its open
// fds are outside handles, never leaks; its threads have no creation stack.
func (a *Aggregator) Seed(pid, ppid uint32, comm, exe string, fds []SeedFD, tids []uint32, t uint64) {
	p := a.newProcess(pid, ppid, comm, t)
	p.exe = exe
	p.table = newTable(0, pid)
	p.table.users[pid] = struct{}{}
	for _, f := range fds {
		p.table.fds[f.FD] = &Handle{FD: f.FD, Kind: f.Kind, Target: f.Target, Outside: true, Created: t, PID: pid}
		a.sites[0]++
	}
	for _, tid := range tids {
		if tid != pid {
			p.table.users[tid] = struct{}{}
		}
	}
}

// Reconcile replaces a live process's table with what /proc says is open,
// after events were lost. Handles /proc confirms keep their history; the
// others are dropped; new ones become outside handles. It marks the process
// as reconciled so that reports say so.
func (a *Aggregator) Reconcile(pid uint32, fds []SeedFD, t uint64) bool {
	p := a.procs[pid]
	if p == nil {
		return false
	}
	p.reconciled = true
	tb := p.table
	open := make(map[int32]SeedFD, len(fds))
	for _, f := range fds {
		open[f.FD] = f
	}
	var doomed []*Handle
	for fd, h := range tb.fds {
		if f, ok := open[fd]; !ok || (f.Kind != event.KindUnknown && h.Kind != event.KindUnknown && f.Kind != h.Kind) {
			doomed = append(doomed, h)
		}
	}
	for _, h := range doomed {
		a.release(tb, h)
	}
	for fd, f := range open {
		if tb.fds[fd] == nil {
			a.add(tb, &Handle{FD: fd, Kind: f.Kind, Target: f.Target, Outside: true, Created: t, PID: pid})
		}
	}
	return true
}

// Vanished ends a live process the kernel no longer has (no /proc/PID)
// whose exit was never seen: its exit record was lost. Left live, it would
// hold its handles, series and alerts until its pid is taken again. It ends
// as a pid taken again does (gone, not exited), reconciled.
func (a *Aggregator) Vanished(pid uint32, t uint64) bool {
	p := a.procs[pid]
	if p == nil {
		return false
	}
	p.reconciled = true
	a.finish(p, t)
	return true
}

// Live returns the fds the aggregator believes pid has open now, sorted.
func (a *Aggregator) Live(pid uint32) []Handle {
	p := a.procs[pid]
	if p == nil {
		return nil
	}
	out := make([]Handle, 0, len(p.table.fds))
	for _, h := range p.table.fds {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FD < out[j].FD })
	return out
}

// Threads returns the tids of pid's threads created while traced.
func (a *Aggregator) Threads(pid uint32) []uint32 {
	p := a.procs[pid]
	if p == nil {
		return nil
	}
	out := make([]uint32, 0, len(p.threads))
	for tid := range p.threads {
		out = append(out, tid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Alive reports whether pid is a traced process that has not exited.
func (a *Aggregator) Alive(pid uint32) bool { return a.procs[pid] != nil }

// LivePIDs returns every traced process still alive.
func (a *Aggregator) LivePIDs() []uint32 {
	out := make([]uint32, 0, len(a.procs))
	for pid := range a.procs {
		out = append(out, pid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Leaks returns every leak judged so far (run: at each exit) plus, in attach
// mode, what live processes hold at time now: handles and threads
// outstanding longer than MinAge, and children left zombies longer than
// MinAge. What exited processes held is in Held, not here.
func (a *Aggregator) Leaks(now uint64) []Leak {
	out := append([]Leak(nil), a.leaks...)
	if a.cfg.Mode == ModeAttach {
		out = append(out, a.outstanding(now, false)...)
	}
	return out
}

// Outside returns the handles open before tracing began, for live processes.
func (a *Aggregator) Outside() []Leak {
	var out []Leak
	for _, pid := range a.LivePIDs() {
		p := a.procs[pid]
		for _, h := range sortedHandles(p.table.fds) {
			if h.Outside && h.PID == pid {
				out = append(out, Leak{Handle: *h, Comm: p.comm, Exe: p.exe})
			}
		}
	}
	return out
}

func sortedHandles(m map[int32]*Handle) []*Handle {
	out := make([]*Handle, 0, len(m))
	for _, h := range m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FD < out[j].FD })
	return out
}

func sortedChildren(m map[uint32]*Handle) []*Handle {
	out := make([]*Handle, 0, len(m))
	for _, h := range m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TID < out[j].TID })
	return out
}

// Outstanding returns, per creating stack, how many handles are live now.
// Stack 0 gathers handles without a stack.
func (a *Aggregator) Outstanding() map[event.StackID]int {
	out := make(map[event.StackID]int, len(a.sites))
	for s, n := range a.sites {
		out[s] = n
	}
	return out
}

// ProcessInfo summarizes a traced process.
type ProcessInfo struct {
	PID, PPID  uint32
	Comm, Exe  string
	Leaked     int
	HeldAtExit int // attach: handles it held as it exited, not leaks
	Exited     bool
	ExitCode   int32
	Reconciled bool
}

// LiveProcesses is the processes alive now, by pid: one per pid. Processes
// also lists those gone, among them one whose pid was taken again before
// its exit was seen (ended, not exited).
func (a *Aggregator) LiveProcesses() []ProcessInfo {
	out := make([]ProcessInfo, 0, len(a.procs))
	for _, pid := range a.LivePIDs() {
		out = append(out, a.procs[pid].info())
	}
	return out
}

// Processes lists every process seen, exited ones first in exit order, then
// live ones by pid.
func (a *Aggregator) Processes() []ProcessInfo {
	out := make([]ProcessInfo, 0, len(a.gone)+len(a.procs))
	for _, p := range a.gone {
		out = append(out, p.info())
	}
	return append(out, a.LiveProcesses()...)
}

func (p *process) info() ProcessInfo {
	return ProcessInfo{PID: p.pid, PPID: p.ppid, Comm: p.comm, Exe: p.exe, Leaked: p.leaked, HeldAtExit: p.held,
		Exited: p.exited, ExitCode: p.exitCode, Reconciled: p.reconciled}
}

// DescribeOutside gives a kind and target to pid's handles from before
// tracing that have none: those an exec revealed in a process first seen at
// its exec (a filter that selects it there), which the kernel sends as bare
// fd numbers. describe reads the kernel's truth (/proc/PID/fd); false
// leaves a handle as it is.
func (a *Aggregator) DescribeOutside(pid uint32, describe func(fd int32) (event.Kind, string, bool)) {
	p := a.procs[pid]
	if p == nil {
		return
	}
	for fd, h := range p.table.fds {
		if !h.Outside || h.Kind != event.KindUnknown {
			continue
		}
		if k, target, ok := describe(fd); ok {
			h.Kind, h.Target = k, target
		}
	}
}
