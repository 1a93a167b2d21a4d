//go:build linux

package session

import (
	"slices"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/symbolize"
	"github.com/leaktrace/leaktrace/tracer"
)

// imageStacks is what the kernel and Go share of one process image: the
// sites whose stacks the kernel sends as a hash, and the pcs it has a rule
// for. A forked child shares its parent's image (bpf/stack.h). The kernel
// keeps its side in LRU maps; Go's side goes with the last process that
// has the image.
type imageStacks struct {
	img   uint64
	pids  int // live processes with this image
	sites map[uint64]siteStack
	// ruled: the pcs whose rules the kernel has, with the file they were
	// taught for (zero: for this image alone).
	ruled map[uint64]symbolize.FileOffset
}

// siteStack is a site's frames, native and Python merged, as the record
// that first sent them gave them.
type siteStack struct {
	locs       []symbolize.Location
	finalizing bool // made once Python finalization had begun
}

// Bounds of what Go keeps per image: past them the sites are
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
	var ps *imageStacks
	if st.Shared {
		ps = s.sharedSites()
	} else {
		ps = s.imageFor(e.PID, st.Img)
	}
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

// sharedSites is the table of the sites named by file offsets, every
// process's (image 0 on both sides); never let go of, bounded by maxSites.
func (s *Session) sharedSites() *imageStacks {
	is := s.images[0]
	if is == nil {
		is = &imageStacks{sites: make(map[uint64]siteStack), ruled: make(map[uint64]symbolize.FileOffset)}
		s.images[0] = is
	}
	return is
}

// imageFor returns the table of image img, which pid has now: a pid whose
// image changed (exec) lets go of its old one.
func (s *Session) imageFor(pid uint32, img uint64) *imageStacks {
	if old, ok := s.imageOf[pid]; ok && old != img {
		delete(s.imageOf, pid)
		s.unrefImage(old)
	}
	is := s.images[img]
	if is == nil {
		is = &imageStacks{img: img, sites: make(map[uint64]siteStack), ruled: make(map[uint64]symbolize.FileOffset)}
		s.images[img] = is
	}
	if _, ok := s.imageOf[pid]; !ok {
		s.imageOf[pid] = img
		is.pids++
	}
	return is
}

// unrefImage drops a process's hold on image img; the last one's table is
// kept until the next TakeSettled, its handles settled in the kernel still
// to be counted.
func (s *Session) unrefImage(img uint64) {
	is := s.images[img]
	if is == nil {
		return
	}
	if is.pids--; is.pids > 0 {
		return
	}
	delete(s.images, img)
	if len(is.sites) > 0 && s.takesSettled && len(s.goneImages) < maxGoneImages {
		s.goneImages[img] = is
	}
}

// forgetSites empties ps's site table, the kernel's side first: a record
// already sent as one of them is counted unknown.
func (s *Session) forgetSites(ps *imageStacks) {
	hashes := make([]uint64, 0, len(ps.sites))
	for h := range ps.sites {
		hashes = append(hashes, h)
	}
	if err := s.tr.ForgetSites(ps.img, hashes); err != nil {
		s.log.Debug("forgetting sites", "image", ps.img, "err", err)
	}
	clear(ps.sites)
}

// learn gives the kernel the rules it does not have yet.
func (s *Session) learn(ps *imageStacks, rules []symbolize.Rule) {
	fresh := rules[:0]
	for _, r := range rules {
		// Again when its file has a new name: the kernel's
		// (Unwinder.KernelName), learnt after the rule was taught.
		if f, ok := ps.ruled[r.PC]; !ok || f != r.File {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 || s.opts.Tracer.NoStackSites {
		return
	}
	if len(ps.ruled)+len(fresh) > maxRuled {
		clear(ps.ruled) // the kernel's LRU has dropped the oldest by now too
	}
	if err := s.tr.LearnRules(ps.img, fresh); err != nil {
		s.log.Debug("unwind rules", "image", ps.img, "err", err)
		return
	}
	for _, r := range fresh {
		ps.ruled[r.PC] = r.File
	}
}

// TakeSettled returns, per stack, the handles settled in the kernel (closed
// within the pairing window, no record sent) since the last call, for the
// sites Go knows; the rest are in Counters().Paired only.
func (s *Session) TakeSettled() (map[event.StackID]uint64, error) {
	type count struct{ img, site, n uint64 }
	var got []count
	if err := s.tr.TakeSettled(func(img, site, n uint64) { got = append(got, count{img, site, n}) }); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.takesSettled = true
	out := make(map[event.StackID]uint64, len(got))
	for _, c := range got {
		ps := s.images[c.img]
		if ps == nil {
			ps = s.goneImages[c.img]
		}
		if ps == nil {
			continue // its processes were gone before the last call
		}
		if site, ok := ps.sites[c.site]; ok {
			if id := s.keep(site.locs); id != 0 {
				out[id] += c.n
			}
		}
	}
	clear(s.goneImages)
	return out, nil
}

// maxGoneImages bounds the images of exited processes kept for
// TakeSettled, once someone calls it (the agent).
const maxGoneImages = 4096

// procGone lets go of an exited process's image.
func (s *Session) procGone(pid uint32) {
	if img, ok := s.imageOf[pid]; ok {
		delete(s.imageOf, pid)
		s.unrefImage(img)
	}
}
