package aggregator

import "github.com/leaktrace/leaktrace/event"

// TakeExited returns the processes that exited since the last call and the
// leaks judged so far (at those exits), and forgets both, with the
// held-at-exit sums (each process's share is in its HeldAtExit): a
// long-running agent keeps only what is alive, whatever comes and goes.
func (a *Aggregator) TakeExited() ([]ProcessInfo, []Leak) {
	gone := make([]ProcessInfo, 0, len(a.gone))
	for _, p := range a.gone {
		gone = append(gone, ProcessInfo{PID: p.pid, PPID: p.ppid, Comm: p.comm, Exe: p.exe, Leaked: p.leaked, HeldAtExit: p.held,
			Exited: p.exited, ExitCode: p.exitCode, Reconciled: p.reconciled})
	}
	leaks := a.leaks
	a.gone, a.leaks = nil, nil
	a.held = HeldAtExit{}
	clear(a.mapHeld)
	clear(a.mapHeldTargets)
	return gone, leaks
}

// Usage is what a live process holds now.
type Usage struct {
	FDs      [event.KindProcess + 1]int // open fds by kind (what /proc/PID/fd lists)
	Open     int                        // all open fds
	Threads  int                        // threads created while traced, still running
	Children int                        // children created while traced, not reaped
	Zombies  int                        // of those, exited and never reaped
}

// Usage returns what pid holds now; false when it is not a live traced process.
func (a *Aggregator) Usage(pid uint32) (Usage, bool) {
	var u Usage
	p := a.procs[pid]
	if p == nil {
		return u, false
	}
	for _, h := range p.table.fds {
		if int(h.Kind) < len(u.FDs) {
			u.FDs[h.Kind]++
		}
	}
	u.Open = len(p.table.fds)
	u.Threads = len(p.threads)
	u.Children = len(p.children)
	for _, h := range p.children {
		if h.exited != 0 {
			u.Zombies++
		}
	}
	return u, true
}

// StacksInUse returns every stack that a live handle (fd, thread or child)
// or a leak not yet taken refers to. It walks the handles rather than
// trusting the per-stack counts: a stack forgotten while in use would leave
// its handle without a site.
func (a *Aggregator) StacksInUse() map[event.StackID]struct{} {
	in := make(map[event.StackID]struct{}, len(a.sites))
	use := func(h *Handle) {
		if h.Stack != 0 {
			in[h.Stack] = struct{}{}
		}
	}
	seen := make(map[*table]bool)
	fds := func(t *table) {
		if seen[t] {
			return
		}
		seen[t] = true
		for _, h := range t.fds {
			use(h)
		}
	}
	for _, p := range a.procs {
		fds(p.table)
		for i := range p.maps {
			if id := p.maps[i].stack; id != 0 {
				in[id] = struct{}{}
			}
		}
		for _, h := range p.threads {
			use(h)
		}
		for _, h := range p.children {
			use(h)
		}
	}
	for _, t := range a.tables {
		fds(t)
	}
	for i := range a.leaks {
		use(&a.leaks[i].Handle)
	}
	a.heldStacks(in)
	return in
}
