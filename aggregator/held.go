package aggregator

import (
	"slices"

	"github.com/leaktrace/leaktrace/event"
)

// In attach and agent mode a process that exits is not a leak: the kernel
// released its fds, and a thread or child it held ended with it or lives on
// on its own. What it held is summed apart here, per creating stack, so that
// a forking server's exited workers (PostgreSQL backends, nginx workers
// across a reload) are visible without being counted. The sums stay bounded
// by the number of stacks, however many processes come and go.

// HeldStack is what exited processes held at exit from one creating stack.
type HeldStack struct {
	Count     int
	Inherited int // of Count, copies inherited at fork
	Kinds     map[event.Kind]int
	Targets   []string // a few examples
}

// HeldAtExit sums what processes held when they exited (attach and agent).
type HeldAtExit struct {
	Processes int // exited processes that held at least one handle
	Handles   int
	Stacks    map[event.StackID]*HeldStack
}

// maxHeldExamples bounds the example targets kept per stack.
const maxHeldExamples = 5

// hold records h, held by p as p ended (attach, agent).
func (a *Aggregator) hold(p *process, h *Handle) {
	if p.held == 0 {
		a.held.Processes++
	}
	p.held++
	a.held.Handles++
	if a.held.Stacks == nil {
		a.held.Stacks = make(map[event.StackID]*HeldStack)
	}
	s := a.held.Stacks[h.Stack]
	if s == nil {
		s = &HeldStack{Kinds: make(map[event.Kind]int)}
		a.held.Stacks[h.Stack] = s
	}
	s.Count++
	if h.Inherited {
		s.Inherited++
	}
	s.Kinds[h.Kind]++
	if h.Target != "" && len(s.Targets) < maxHeldExamples && !slices.Contains(s.Targets, h.Target) {
		s.Targets = append(s.Targets, h.Target)
	}
}

// Held returns a copy of what exited processes held at exit (attach, agent;
// empty in run mode, where that is what leaked).
func (a *Aggregator) Held() HeldAtExit {
	out := HeldAtExit{Processes: a.held.Processes, Handles: a.held.Handles,
		Stacks: make(map[event.StackID]*HeldStack, len(a.held.Stacks))}
	for id, s := range a.held.Stacks {
		c := *s
		c.Kinds = make(map[event.Kind]int, len(s.Kinds))
		for k, n := range s.Kinds {
			c.Kinds[k] = n
		}
		c.Targets = append([]string(nil), s.Targets...)
		out.Stacks[id] = &c
	}
	return out
}

// Young returns, in attach mode, what live processes hold now that is not a
// leak yet only because it is younger than MinAge: handles and threads made
// less than MinAge ago, children exited less than MinAge ago. A short attach
// that judged nothing says so with these.
func (a *Aggregator) Young(now uint64) []Leak {
	if a.cfg.Mode != ModeAttach {
		return nil
	}
	return a.outstanding(now, true)
}

// handedOver: an inherited copy that no traced process holds the original
// of any more — its parent closed its copy (accept, fork, close: PostgreSQL,
// Apache prefork, sshd) or exited. The child alone holds the handle now, so
// in attach and agent mode it is the child's own. A copy of a copy is
// checked against its own parent, which holds the same creation.
func (a *Aggregator) handedOver(p *process, h *Handle) bool {
	if !h.Inherited || p.ppid == 0 {
		return false
	}
	parent := a.procs[p.ppid]
	if parent == nil {
		return true
	}
	if parent.table == p.table {
		return false
	}
	o := parent.table.fds[h.FD]
	return o == nil || o.Created != h.Created || o.Stack != h.Stack
}

// outstanding lists what live processes hold at now: with young false, what
// has been held at least MinAge (leaks); with young true, the rest.
func (a *Aggregator) outstanding(now uint64, young bool) []Leak {
	var out []Leak
	old := func(since uint64) bool { return now >= since+a.cfg.MinAge }
	seen := make(map[*table]bool)
	for _, pid := range a.LivePIDs() {
		p := a.procs[pid]
		// A table shared by CLONE_FILES is listed once, each handle under
		// its creator if alive, else under this process.
		if !seen[p.table] {
			seen[p.table] = true
			for _, h := range sortedHandles(p.table.fds) {
				if !countable(h) || old(h.Created) == young {
					continue
				}
				owner := p
				if q := a.procs[h.PID]; q != nil && q.table == p.table {
					owner = q
				}
				l := Leak{Handle: *h, Comm: owner.comm, Exe: owner.exe, Ended: now, Reason: ReasonOutstanding}
				if a.handedOver(owner, h) {
					l.Inherited, l.HandedOver = false, true
				}
				out = append(out, l)
			}
		}
		for _, tid := range a.Threads(pid) {
			h := p.threads[tid]
			if old(h.Created) != young {
				out = append(out, Leak{Handle: *h, Comm: p.comm, Exe: p.exe, Ended: now, Reason: ReasonOutstanding})
			}
		}
		for _, h := range sortedChildren(p.children) {
			if h.exited != 0 && old(h.exited) != young {
				out = append(out, Leak{Handle: *h, Comm: p.comm, Exe: p.exe, Ended: now, Reason: ReasonZombie})
			}
		}
	}
	return out
}

// heldStacks adds the stacks of the held-at-exit sums to in.
func (a *Aggregator) heldStacks(in map[event.StackID]struct{}) {
	for id := range a.held.Stacks {
		if id != 0 {
			in[id] = struct{}{}
		}
	}
	for id := range a.mapHeld {
		if id != 0 {
			in[id] = struct{}{}
		}
	}
}
