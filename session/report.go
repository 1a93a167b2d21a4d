//go:build linux

package session

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/procfs"
	"github.com/leaktrace/leaktrace/python"
	"github.com/leaktrace/leaktrace/report"
)

// ReportInfo is what the caller knows that the session does not.
type ReportInfo struct {
	Mode     string
	Command  []string
	ExitCode int
	PID      int
	// CountInherited counts copies inherited at fork as leaks.
	CountInherited bool
}

// symbolized is one stack, symbolized once.
type symbolized struct {
	frames   []report.Frame
	key      string
	headline report.Frame
	internal bool
}

// Report builds the report of everything seen so far.
func (s *Session) Report(info ReportInfo) (*report.Report, error) {
	counters, err := s.tr.Counters()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	now := monotonicNow()
	if a := s.agg.Now(); a > now {
		now = a
	}
	r := &report.Report{
		Schema:           report.Schema,
		LeaktraceVersion: report.BuildVersion(),
		Mode:             info.Mode,
		Command:          info.Command,
		ExitCode:         info.ExitCode,
		PID:              info.PID,
		Started:          s.start.UTC().Format(time.RFC3339),
		Duration:         time.Since(s.start).Seconds(),
		Events: report.Events{Received: s.agg.Events(), Lost: counters.Lost(), PairedInKernel: counters.Paired,
			Stacks: &report.StackCounts{Site: counters.StackSite, New: counters.StackNew, Copy: counters.StackCopy, Unknown: s.stacksUnknown, FileRules: counters.FileRules, Memo: counters.StackMemo,
				Python: counters.PyStacks, PythonThreadKnown: counters.PyThreadKnown}},
		Leaks: []report.Leak{},
		Sites: []report.Site{},
	}
	r.Complete = true
	if lost := counters.Lost(); lost > 0 {
		r.Complete = false
		r.Notes = append(r.Notes, fmt.Sprintf("%d events lost in the kernel (ring buffer full %d, syscall not parked %d, pid filter full %d, SCM_RIGHTS fds past one record %d, 32-bit syscalls %d): leaks may be missing or wrong; raise --ring-buffer-size",
			lost, counters.RingbufFull, counters.InflightFull, counters.TracedFull, counters.RightsDropped, counters.Compat))
	}
	if counters.UnreadBytes > 0 {
		r.Complete = false
		r.Notes = append(r.Notes, fmt.Sprintf("%d bytes of records were still unread when the drain at the end had to stop: the last events are missing, leaks may be wrong", counters.UnreadBytes))
	}
	if counters.Compat > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d 32-bit (compat) syscalls were made by traced processes: leaktrace follows x86-64 syscalls only, so what those did to fd tables is unknown", counters.Compat))
	}
	if counters.MissedExit > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d fd syscall exits had no recorded entry (begun before tracing started): those calls were not followed", counters.MissedExit))
	}
	if s.stacksUnknown > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d creation stacks named a call site leaktrace no longer had (its first record was lost, or its process image was let go of): those handles have no stack", s.stacksUnknown))
	}
	if lost := counters.Lost(); lost > s.reconciledAt {
		// Lost events leave tables wrong: take the kernel's word for every
		// process still alive, once per new loss (a report every scrape must
		// not re-read every /proc/PID/fd). One the kernel no longer has lost
		// its exit record: it ends now.
		s.reconciledAt = lost
		for _, pid := range s.agg.LivePIDs() {
			fds, err := procfs.FDs(int(pid))
			if err != nil {
				if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(serr, fs.ErrNotExist) {
					s.agg.Vanished(pid, now)
				}
				continue
			}
			seed := make([]aggregator.SeedFD, len(fds))
			for i, f := range fds {
				seed[i] = aggregator.SeedFD{FD: f.FD, Kind: f.Kind, Target: f.Target}
			}
			s.agg.Reconcile(pid, seed, now)
			// Mapped bytes too: what the kernel no longer maps goes.
			if ranges, err := procfs.MapRanges(int(pid)); err == nil {
				spans := make([]aggregator.Span, len(ranges))
				for i, r := range ranges {
					spans[i] = aggregator.Span{Start: r.Start, End: r.End}
				}
				s.agg.ReconcileMaps(pid, spans)
			}
		}
	}
	defer s.pyNotes(r)
	if s.badRecs > 0 {
		r.Complete = false
		r.Notes = append(r.Notes, fmt.Sprintf("%d malformed records skipped (last: %v)", s.badRecs, s.lastErr))
	}

	syms := make(map[event.StackID]*symbolized)
	sym := func(id event.StackID) *symbolized {
		if v, ok := syms[id]; ok {
			return v
		}
		v := s.symbolize(id)
		syms[id] = v
		return v
	}

	sites := make(map[string]*report.Site)
	leakedBy := make(map[int]int) // pid -> counted leaks
	internal := 0
	for _, l := range s.agg.Leaks(now) {
		sy := sym(l.Stack)
		rl := leakOf(l, now, sy)
		switch {
		case sy.internal:
			rl.NotCounted = report.NotCountedInternal
			internal++
		case l.Inherited && !info.CountInherited:
			rl.NotCounted = report.NotCountedInherited
		default:
			rl.Counted = true
		}
		r.Leaks = append(r.Leaks, rl)
		if !rl.Counted {
			continue
		}
		site := sites[rl.Site]
		if site == nil {
			site = &report.Site{Key: rl.Site, Headline: sy.headline, Kinds: map[string]int{}, Stack: sy.frames}
			sites[rl.Site] = site
		}
		leakedBy[rl.PID]++
		site.Count++
		site.Kinds[rl.Kind]++
		report.AddExample(&site.Targets, rl.Target, 5)
		report.AddExample(&site.Exes, rl.Executable(), 5)
	}
	if internal > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d handles of language runtimes (Go's threads and poller, …) live for the whole process: listed with internal=true, not counted", internal))
	}
	if info.Mode == "attach" || info.Mode == "agent" {
		for id, n := range s.agg.Outstanding() {
			if id == 0 {
				continue
			}
			sy := sym(id)
			if site := sites[sy.key]; site != nil {
				site.Outstanding += n
				site.Growth += s.growth[id] // several stacks can share a site's key
			}
		}
	}
	if info.Mode == "attach" || info.Mode == "agent" {
		r.HeldAtExit = heldAtExit(s.agg.Held(), sym)
		r.YoungerThanMinAge = s.young(now, info, sym)
	}
	r.Mapped = s.mapped(info, sym)
	if info.Mode == "attach" { // the agent's host holds too many to list
		for _, l := range s.agg.Outside() {
			r.Preexisting = append(r.Preexisting, leakOf(l, now, sym(0)))
		}
	}
	for _, site := range sites {
		r.Sites = append(r.Sites, *site)
	}
	sort.Slice(r.Sites, func(i, j int) bool {
		if r.Sites[i].Count != r.Sites[j].Count {
			return r.Sites[i].Count > r.Sites[j].Count
		}
		return r.Sites[i].Key < r.Sites[j].Key
	})
	for _, p := range s.agg.Processes() {
		if p.Reconciled {
			r.Complete = false
		}
		code := int(p.ExitCode)
		if p.Exited {
			code = waitStatusCode(p.ExitCode)
		}
		r.Processes = append(r.Processes, report.Process{PID: int(p.PID), PPID: int(p.PPID), Comm: p.Comm, Exe: p.Exe,
			Leaked: leakedBy[int(p.PID)], HeldAtExit: p.HeldAtExit, Exited: p.Exited, ExitCode: code, Reconciled: p.Reconciled})
	}
	return r, nil
}

// heldAtExit renders what exited processes held (attach, agent): totals, and
// the sites that made most of it.
func heldAtExit(h aggregator.HeldAtExit, sym func(event.StackID) *symbolized) *report.HeldAtExit {
	out := &report.HeldAtExit{Processes: h.Processes, Handles: h.Handles, Kinds: map[string]int{}, Sites: []report.Site{}}
	sites := make(map[string]*report.Site)
	for id, hs := range h.Stacks {
		out.Inherited += hs.Inherited
		sy := sym(id)
		site := sites[sy.key]
		if site == nil {
			site = &report.Site{Key: sy.key, Headline: sy.headline, Kinds: map[string]int{}, Targets: []string{}, Exes: []string{}, Stack: sy.frames}
			if site.Stack == nil {
				site.Stack = []report.Frame{}
			}
			sites[sy.key] = site
		}
		site.Count += hs.Count
		for k, n := range hs.Kinds {
			site.Kinds[k.String()] += n
			out.Kinds[k.String()] += n
		}
		for _, t := range hs.Targets {
			report.AddExample(&site.Targets, t, 5)
		}
	}
	for _, site := range sites {
		out.Sites = append(out.Sites, *site)
	}
	sort.Slice(out.Sites, func(i, j int) bool {
		if out.Sites[i].Count != out.Sites[j].Count {
			return out.Sites[i].Count > out.Sites[j].Count
		}
		return out.Sites[i].Key < out.Sites[j].Key
	})
	if len(out.Sites) > report.MaxHeldSites {
		out.Sites = out.Sites[:report.MaxHeldSites]
	}
	return out
}

// mapped sums what traced processes left mapped, by site: in run, what
// they had mapped at exit (and what any still alive has now); in attach and
// agent, what live processes have mapped now.
func (s *Session) mapped(info ReportInfo, sym func(event.StackID) *symbolized) *report.Mapped {
	out := &report.Mapped{Sites: []report.MappedSite{}, InheritedBytes: s.agg.MappedInherited()}
	live := s.agg.MappedLive()
	targets := s.agg.MappedTargets(maxMappedTargets)
	atExit := s.agg.MappedAtExit()
	exitTargets := s.agg.MappedAtExitTargets()
	sites := make(map[string]*report.MappedSite)
	add := func(id event.StackID, ms aggregator.MappedSite, tg []string) {
		out.Bytes += ms.Bytes
		out.Mappings += ms.Mappings
		sy := sym(id)
		site := sites[sy.key]
		if site == nil {
			site = &report.MappedSite{Key: sy.key, Headline: sy.headline, Targets: []string{}, Stack: sy.frames}
			if site.Stack == nil {
				site.Stack = []report.Frame{}
			}
			sites[sy.key] = site
		}
		site.Bytes += ms.Bytes
		site.Mappings += ms.Mappings
		if info.Mode != "run" {
			site.GrowthBytes += s.mgrowth[id] // several stacks can share a key
		}
		for _, t := range tg {
			report.AddExample(&site.Targets, t, maxMappedTargets)
		}
	}
	for id, ms := range live {
		add(id, ms, targets[id])
	}
	if info.Mode == "run" {
		for id, ms := range atExit {
			add(id, ms, exitTargets[id])
		}
	} else {
		for _, ms := range atExit {
			out.HeldAtExitBytes += ms.Bytes
		}
	}
	if out.Bytes == 0 && out.InheritedBytes == 0 && out.HeldAtExitBytes == 0 {
		return nil
	}
	for _, site := range sites {
		out.Sites = append(out.Sites, *site)
	}
	sort.Slice(out.Sites, func(i, j int) bool {
		if out.Sites[i].Bytes != out.Sites[j].Bytes {
			return out.Sites[i].Bytes > out.Sites[j].Bytes
		}
		return out.Sites[i].Key < out.Sites[j].Key
	})
	if len(out.Sites) > report.MaxMappedSites {
		out.Sites = out.Sites[:report.MaxMappedSites]
	}
	return out
}

const maxMappedTargets = 3

// young counts what live processes hold that would count as a leak but is
// younger than --min-age (attach, agent).
func (s *Session) young(now uint64, info ReportInfo, sym func(event.StackID) *symbolized) *report.Young {
	y := &report.Young{Kinds: map[string]int{}, MinAgeSeconds: s.opts.MinAge.Seconds()}
	for _, l := range s.agg.Young(now) {
		if sym(l.Stack).internal || l.Inherited && !info.CountInherited {
			continue
		}
		y.Handles++
		y.Kinds[l.Kind.String()]++
	}
	return y
}

// waitStatusCode turns the kernel's exit_code (wait status) into a shell-style code.
func waitStatusCode(ws int32) int {
	if sig := ws & 0x7f; sig != 0 {
		return 128 + int(sig)
	}
	return int(ws>>8) & 0xff
}

func leakOf(l aggregator.Leak, now uint64, sy *symbolized) report.Leak {
	end := l.Ended
	if end == 0 {
		end = now
	}
	age := 0.0
	if end > l.Created {
		age = float64(end-l.Created) / 1e9
	}
	target := l.Target
	if target == "" && l.FD < 0 {
		target = fmt.Sprintf("%s %d (%s)", l.Kind, l.TID, l.Reason)
	}
	rl := report.Leak{
		PID: int(l.PID), Comm: l.Comm, Exe: l.Exe, FD: int(l.FD), Kind: l.Kind.String(), Target: target,
		AgeSeconds: age, Inherited: l.Inherited, HandedOver: l.HandedOver, Stack: sy.frames, Site: sy.key, Internal: sy.internal,
	}
	if l.FD < 0 {
		rl.TID = int(l.TID)
	}
	if l.Reason == aggregator.ReasonPyShutdown {
		rl.ClosedBy = closedByPyShutdown
	}
	if rl.Stack == nil {
		rl.Stack = []report.Frame{}
	}
	return rl
}

// symbolize names every frame of a stack and derives its site key and
// headline.
func (s *Session) symbolize(id event.StackID) *symbolized {
	locs := s.stacks.Get(id)
	out := &symbolized{}
	var py []python.Frame
	for i, loc := range locs {
		if loc.Module == python.Module {
			py = append(py, s.pyFrame(loc.Vaddr))
			continue
		}
		fs := s.cache.Symbolize(loc, i > 0)
		if len(fs) == 0 {
			fs = []report.Frame{{Address: loc.Addr, Module: loc.Module}}
		}
		out.frames = append(out.frames, fs...)
	}
	for i := range out.frames {
		out.frames[i].Module = displayPath(out.frames[i].Module)
	}
	out.frames = python.Merge(out.frames, py)
	if len(out.frames) == 0 {
		return out
	}
	// A Python stack's site is its Python frames: the same code leaks at
	// the same site whichever interpreter build runs it.
	keyFrames := out.frames
	if len(py) > 0 {
		keyFrames = keyFrames[:0:0]
		for _, f := range py {
			// Frames of the import machinery (<frozen importlib._bootstrap>)
			// come and go with whether a module's code object could still
			// be read: they would make one site two.
			if rf := python.ReportFrame(f); f.Resolved() && !strings.HasPrefix(rf.File, "<frozen") {
				keyFrames = append(keyFrames, rf)
			}
		}
	}
	h := sha256.New()
	for i, f := range keyFrames {
		if i >= 24 {
			break
		}
		name := f.Function
		if name == "" {
			name = filepath.Base(f.Module)
		}
		fmt.Fprintf(h, "%s\x00%s\n", name, filepath.Base(f.File))
	}
	out.key = hex.EncodeToString(h.Sum(nil))[:16]
	out.internal = runtimeInternal(out.frames)
	out.headline = out.frames[0]
	for _, f := range out.frames {
		if !systemFrame(f) {
			out.headline = f
			break
		}
	}
	if c, ok := python.Culprit(py); ok {
		out.headline = python.ReportFrame(c)
	}
	return out
}

// runtimeInternal: the handle was made by the Go runtime for itself (its
// threads, its poller's epoll and eventfd, the cgroup files it keeps open),
// not on behalf of user code. Known creators are named, since user calls
// also pass through runtime frames (runtime.fcntl serves os and net).
func runtimeInternal(frames []report.Frame) bool {
	for _, f := range frames {
		for _, c := range goRuntimeCreators {
			if strings.HasPrefix(f.Function, c) {
				return true
			}
		}
	}
	return false
}

var goRuntimeCreators = []string{"runtime.newosproc", "runtime.newm", "runtime.netpollinit",
	"internal/runtime/cgroup.", "runtime.defaultGOMAXPROCSInit",
	// netpollinit inlined (PGO-built toolchains); the cgo runtime's thread start.
	"runtime.netpollGenericInit", "_cgo_try_pthread_create", "_cgo_sys_thread_start"}

var systemModules = []string{"libc.so", "libc-", "ld-linux", "ld-musl", "libpthread", "libstdc++", "libgcc_s", "libpython", "libdl"}

// systemFrame: a frame of the C library, the dynamic loader, a language
// runtime or Go's standard library, which never names the user's code.
func systemFrame(f report.Frame) bool {
	if f.Function == "" {
		return true
	}
	base := filepath.Base(f.Module)
	for _, m := range systemModules {
		if strings.HasPrefix(base, m) {
			return true
		}
	}
	return goStdFunction(f.Function)
}

// goStdFunction: "os.Open", "net.(*conn).Read", "internal/poll.x" are
// standard library; "main.f" and "example.com/x.f" are not.
func goStdFunction(fn string) bool {
	if strings.HasPrefix(fn, "main.") {
		return false
	}
	slash := strings.IndexByte(fn, '/')
	dot := strings.IndexByte(fn, '.')
	if dot < 0 {
		return false // a C symbol
	}
	first := fn[:dot]
	if slash >= 0 && slash < dot {
		first = fn[:slash]
	}
	return !strings.Contains(first, ".") && isGoStdRoot(first)
}

var goStdRoots = map[string]bool{"runtime": true, "syscall": true, "os": true, "net": true, "internal": true, "io": true,
	"sync": true, "crypto": true, "bufio": true, "fmt": true, "time": true, "database": true, "log": true, "vendor": true,
	"golang.org": true, "path": true, "encoding": true, "context": true, "reflect": true, "testing": true, "archive": true,
	"compress": true, "debug": true, "embed": true, "errors": true, "hash": true, "mime": true, "plugin": true,
	"sort": true, "strconv": true, "strings": true, "text": true, "unicode": true, "slices": true, "maps": true, "iter": true}

func isGoStdRoot(s string) bool { return goStdRoots[s] }
