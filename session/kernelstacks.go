//go:build linux

package session

import (
	"slices"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/symbolize"
	"github.com/leaktrace/leaktrace/tracer"
)

// procStacks is what the kernel and Go share of one address space: the
// sites whose stacks the kernel sends as a hash, and the pcs it has a rule
// for. The kernel keeps its side in LRU maps; Go's side goes with the
// process (exec, exit).
type procStacks struct {
	key   tracer.ProcKey
	sites map[uint64]siteStack
	ruled map[uint64]struct{}
}

// siteStack is a site's frames, native and Python merged, as the record
// that first sent them gave them.
type siteStack struct {
	locs       []symbolize.Location
	finalizing bool // made once Python finalization had begun
}

// Bounds of what Go keeps per address space: past them the sites are
// forgotten on both sides (maxSites), or the kernel hears a rule again
// (maxRuled).
const (
	maxSites = 1 << 14
	maxRuled = 1 << 15
)

// intern turns the stack of e, in whichever form the kernel sent it, into a
// stack id: a known site's frames (native and Python) from the table, a new
// site's pcs symbolized once, else an unwind in Go from where the kernel
// stopped, whose steps the kernel learns.
func (s *Session) intern(e *event.Event, st *tracer.Stack) event.StackID {
	as := s.space(e.PID)
	ps := s.procStacks(st.Proc)
	switch {
	case st.SiteKnown:
		// The site's Python frames were not sent either.
		delete(s.py.pending, e.TID)
		site, ok := ps.sites[st.Site]
		if !ok {
			// Its first record went to an image Go has already let go of.
			s.stacksUnknown++
			return 0
		}
		if site.finalizing {
			e.Flags |= event.FlagPyFinalizing
		}
		return s.keep(site.locs)
	case st.New:
		s.locs = symbolize.Locate(as, s.cache, st.Known, s.locs[:0])
		s.locs = s.pyLocations(e, s.locs)
		if len(ps.sites) >= maxSites {
			s.forgetSites(ps)
		}
		ps.sites[st.Site] = siteStack{locs: slices.Clone(s.locs), finalizing: e.Flags&event.FlagPyFinalizing != 0}
		return s.keep(s.locs)
	}
	s.pcs = append(s.pcs[:0], st.Known...)
	s.rules = s.rules[:0]
	regs := symbolize.Regs{IP: st.IP, SP: st.SP, BP: st.BP}
	s.pcs = s.unw.UnwindFrom(as, regs, len(st.Known) == 0, st.Bytes, st.KernelFP, maxFrames-len(st.Known), s.pcs, &s.rules)
	s.learn(ps, s.rules)
	s.locs = symbolize.Locate(as, s.cache, s.pcs, s.locs[:0])
	s.locs = s.pyLocations(e, s.locs)
	return s.keep(s.locs)
}

// procStacks returns the table of address space k, a fresh one when the
// process exec'd or its tgid was reused since.
func (s *Session) procStacks(k tracer.ProcKey) *procStacks {
	ps := s.procs[k.TGID]
	if ps == nil || ps.key != k {
		ps = &procStacks{key: k, sites: make(map[uint64]siteStack), ruled: make(map[uint64]struct{})}
		s.procs[k.TGID] = ps
	}
	return ps
}

// forgetSites empties ps's site table, the kernel's side first: a record
// already sent as one of them is counted unknown.
func (s *Session) forgetSites(ps *procStacks) {
	hashes := make([]uint64, 0, len(ps.sites))
	for h := range ps.sites {
		hashes = append(hashes, h)
	}
	if err := s.tr.ForgetSites(ps.key, hashes); err != nil {
		s.log.Debug("forgetting sites", "pid", ps.key.TGID, "err", err)
	}
	clear(ps.sites)
}

// learn gives the kernel the rules it does not have yet.
func (s *Session) learn(ps *procStacks, rules []symbolize.Rule) {
	fresh := rules[:0]
	for _, r := range rules {
		if _, ok := ps.ruled[r.PC]; !ok {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 || s.opts.Tracer.NoStackSites {
		return
	}
	if len(ps.ruled)+len(fresh) > maxRuled {
		clear(ps.ruled) // the kernel's LRU has dropped the oldest by now too
	}
	if err := s.tr.LearnRules(ps.key, fresh); err != nil {
		s.log.Debug("unwind rules", "pid", ps.key.TGID, "err", err)
		return
	}
	for _, r := range fresh {
		ps.ruled[r.PC] = struct{}{}
	}
}

// TakeSettled returns, per stack, the handles settled in the kernel (closed
// within the pairing window, no record sent) since the last call, for the
// sites Go knows; the rest are in Counters().Paired only.
func (s *Session) TakeSettled() (map[event.StackID]uint64, error) {
	type count struct {
		proc tracer.ProcKey
		site uint64
		n    uint64
	}
	var got []count
	if err := s.tr.TakeSettled(func(proc tracer.ProcKey, site, n uint64) { got = append(got, count{proc, site, n}) }); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.takesSettled = true
	out := make(map[event.StackID]uint64, len(got))
	for _, c := range got {
		ps := s.procs[c.proc.TGID]
		if ps == nil || ps.key != c.proc {
			ps = s.goneProcs[c.proc]
		}
		if ps == nil {
			continue // exited or exec'd before the last call
		}
		if site, ok := ps.sites[c.site]; ok {
			if id := s.keep(site.locs); id != 0 {
				out[id] += c.n
			}
		}
	}
	clear(s.goneProcs)
	return out, nil
}

// maxGoneProcs bounds the exited processes whose sites are kept for
// TakeSettled, once someone calls it (the agent).
const maxGoneProcs = 4096

// procGone moves the site table of an exited process aside until the next
// TakeSettled: its handles settled in the kernel are still to be counted.
func (s *Session) procGone(pid uint32) {
	ps := s.procs[pid]
	delete(s.procs, pid)
	if ps == nil || len(ps.sites) == 0 || !s.takesSettled || len(s.goneProcs) >= maxGoneProcs {
		return
	}
	s.goneProcs[ps.key] = ps
}
