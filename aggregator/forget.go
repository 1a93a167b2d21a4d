package aggregator

import "github.com/leaktrace/leaktrace/event"

// TakeExited returns the processes that exited since the last call and the
// leaks judged so far (at those exits), and forgets both: a long-running
// agent keeps only what is alive, whatever comes and goes.
func (a *Aggregator) TakeExited() ([]ProcessInfo, []Leak) {
	gone := make([]ProcessInfo, 0, len(a.gone))
	for _, p := range a.gone {
		gone = append(gone, ProcessInfo{PID: p.pid, PPID: p.ppid, Comm: p.comm, Exe: p.exe, Leaked: p.leaked,
			Exited: p.exited, ExitCode: p.exitCode, Reconciled: p.reconciled})
	}
	leaks := a.leaks
	a.gone, a.leaks = nil, nil
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
