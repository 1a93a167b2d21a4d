//go:build linux

// Package session wires the tracer, the unwinder and the aggregator into one
// tracing session, as `run` and `attach` use it: events are decoded, their
// stacks unwound and interned, and folded into the aggregator in one goroutine,
// in ring buffer order.
package session

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/procfs"
	"github.com/leaktrace/leaktrace/symbolize"
	"github.com/leaktrace/leaktrace/tracer"
)

// Options configure a session.
type Options struct {
	Mode   aggregator.Mode
	MinAge time.Duration
	Tracer tracer.Config
	Log    *slog.Logger
	// OnEvent, when set, sees every decoded event after it was applied
	// (tests use it to check the live table at known points).
	OnEvent func(*event.Event)
	// Stdout and Stderr, when set, replace leaktrace's own for a command
	// Start launches (tests read a generator's checkpoints this way).
	Stdout, Stderr *os.File
	// MaxStacks, when positive, bounds the distinct stacks kept: handles
	// created from a new stack past it are kept with no stack, and counted
	// (a long-running agent's memory must not grow with every new call path).
	// Compact frees room.
	MaxStacks int
}

// Session is one tracing session.
type Session struct {
	opts  Options
	log   *slog.Logger
	tr    *tracer.Tracer
	start time.Time

	mu      sync.Mutex // guards everything below
	agg     *aggregator.Aggregator
	dec     tracer.Decoder
	d       tracer.Decoded
	cache   *symbolize.Cache
	unw     *symbolize.Unwinder
	spaces  map[uint32]*symbolize.AddressSpace
	stacks  *StackTable
	pcs     []uint64
	locs    []symbolize.Location
	badRecs uint64
	// stacksDropped counts stacks not kept because MaxStacks was reached.
	stacksDropped uint64
	// stacksUnknown counts stacks sent as a site Go no longer had.
	stacksUnknown uint64
	images        map[uint64]*imageStacks // by image id
	imageOf       map[uint32]uint64       // each process's image
	goneImages    map[uint64]*imageStacks
	takesSettled  bool
	rules         []symbolize.Rule
	lastErr       error
	// mntns caches each process's mount namespace ("" unknown): paths
	// the kernel gives name files in it.
	mntns  map[uint32]mountNS
	selfNS string
	// nsLive: a process of each other namespace that was alive when Go
	// looked, to read the files of one gone before Go did (a container's
	// exec probe, through the container's main process).
	nsLive map[string]uint32
	// reconciledAt is the lost-event count when tables were last rebuilt
	// from /proc.
	reconciledAt uint64
	// growth and low track, per stack, outstanding now minus the lowest
	// count seen since the session began (attach's growth column).
	growth map[event.StackID]int
	low    map[event.StackID]int
	// mgrowth and mlow are the same for each stack's mapped bytes.
	mgrowth map[event.StackID]uint64
	mlow    map[event.StackID]uint64
	py      *pyState
}

// New loads the BPF programs. Nothing is traced until Add is called, unless
// the tracer traces the whole host.
func New(opts Options) (*Session, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	tr, err := tracer.New(opts.Tracer)
	if err != nil {
		return nil, err
	}
	cache := symbolize.NewCache(256)
	s := &Session{
		opts:       opts,
		log:        opts.Log,
		tr:         tr,
		start:      time.Now(),
		agg:        aggregator.New(aggregator.Config{Mode: opts.Mode, MinAge: uint64(opts.MinAge)}),
		cache:      cache,
		unw:        symbolize.NewUnwinder(cache),
		spaces:     make(map[uint32]*symbolize.AddressSpace),
		images:     make(map[uint64]*imageStacks),
		imageOf:    make(map[uint32]uint64),
		goneImages: make(map[uint64]*imageStacks),
		stacks:     NewStackTable(opts.MaxStacks),
		growth:     make(map[event.StackID]int),
		low:        make(map[event.StackID]int),

		mgrowth: make(map[event.StackID]uint64),
		mlow:    make(map[event.StackID]uint64),
	}
	s.py = newPyState(tr, s)
	// The bench reads this line: how long from leaktrace's start until the
	// kernel side is loaded and attached (issue: ready in under 300 ms).
	s.log.Debug("tracer ready", "since_start_ms", time.Since(processStart).Milliseconds(), "load_ms", tr.LoadTime.Milliseconds())
	return s, nil
}

// processStart is close to when leaktrace started: package variables are
// initialized before main runs.
var processStart = time.Now()

// Close detaches the programs.
func (s *Session) Close() error { return s.tr.Close() }

// Started is when the session began.
func (s *Session) Started() time.Time { return s.start }

// Add starts tracing a live process: it enters the in-kernel filter first, so
// that nothing it does from now on is missed, then what it already has (open
// fds, threads, mappings) is read from /proc as the starting state.
func (s *Session) Add(pid int) error {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return err
	}
	if err := s.tr.Trace(uint32(pid)); err != nil {
		return err
	}
	fds, err := procfs.FDs(pid)
	if err != nil {
		return err
	}
	tids, err := procfs.Tasks(pid)
	if err != nil {
		return err
	}
	maps, err := symbolize.ReadMaps(pid)
	if err != nil {
		return fmt.Errorf("reading mappings of pid %d: %w", pid, err)
	}
	seed := make([]aggregator.SeedFD, len(fds))
	for i, f := range fds {
		seed[i] = aggregator.SeedFD{FD: f.FD, Kind: f.Kind, Target: f.Target}
	}
	as := &symbolize.AddressSpace{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range maps {
		m.Path = s.hostPath(uint32(pid), m.Path)
		as.Map(m)
		s.py.tracker.Mapped(uint32(pid), m.Path, m.Start, m.Offset)
	}
	s.agg.Seed(uint32(pid), uint32(st.PPID), st.Comm, procfs.Exe(pid), seed, tids, monotonicNow())
	s.spaces[uint32(pid)] = as
	return nil
}

// Run reads and applies events until stop is closed and the ring buffer has
// been drained.
func (s *Session) Run(stop <-chan struct{}) error {
	err := s.tr.ReadUntil(stop, s.handle)
	if errors.Is(err, tracer.ErrClosed) {
		return nil
	}
	return err
}

func (s *Session) handle(raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.d
	if err := s.dec.Decode(raw, d); err != nil {
		s.badRecs++
		if s.lastErr == nil {
			s.log.Warn("malformed record", "err", err)
		}
		s.lastErr = err
		return nil
	}
	e := &d.Event
	switch e.Type {
	case event.PyStack:
		s.pyStack(d)
		return nil
	case event.PyCode:
		c := &d.PyCode
		s.py.tracker.Learn(e.PID, c.Code, c.Ident, c.FirstLine, c.Name, c.File, c.Linetable)
		return nil
	case event.FileID:
		// Ahead of the copy it names a file of: the rules Go derives
		// from the copy are keyed as the kernel will look them up.
		// The offsets must agree, or Go's mapping is not the kernel's.
		f := &d.FileID
		if as := s.spaces[e.PID]; as != nil {
			if m, ok := as.Lookup(f.IP); ok && m.Offset+(f.IP-m.Start) == f.File.Off {
				s.unw.KernelName(m.Path, f.File)
			}
		}
		return nil
	case event.Mmap:
		if d.Map.Path != "" && d.Map.Len > 0 {
			path := s.hostPath(e.PID, d.Map.Path)
			s.space(e.PID).Map(symbolize.Mapping{Start: d.Map.Addr, End: d.Map.Addr + d.Map.Len, Offset: d.Map.Offset, Path: path})
			s.py.tracker.Mapped(e.PID, path, d.Map.Addr, d.Map.Offset)
		}
	case event.Exec:
		s.py.tracker.Exec(e.PID)
		// Exec may follow an unshare(CLONE_NEWNS); the record says which
		// namespace it runs in (a readlink less per new process).
		s.forgetMountNS(e.PID)
		if d.MntNS != 0 {
			s.learnMountNS(e.PID, fmt.Sprintf("mnt:[%d]", d.MntNS))
		}
		s.execImage(e.PID, e.Exe, d.AtEntry, d.AtBase)
	case event.TaskNew:
		if !e.IsThread {
			if ps := s.spaces[e.PID]; ps != nil {
				s.spaces[e.ChildPID] = ps.Clone()
			}
			s.py.tracker.Fork(e.PID, e.ChildPID)
		}
	}
	// A copy of an fd whose path is known takes that path (aggregator
	// fdOpen): a shell's every redirection is one, and a readlink each
	// costs more than the rest of its record.
	if e.Type == event.FDOpen && !s.agg.TakesSourcePath(e) {
		resolveTarget(e)
	}
	if d.Stack.Present {
		e.Stack = s.intern(e, &d.Stack)
	}
	s.agg.Apply(e)
	if e.Type == event.Exec {
		// fds the exec revealed come as bare numbers: their kind is in /proc.
		s.agg.DescribeOutside(e.PID, func(fd int32) (event.Kind, string, bool) { return procfs.DescribeFD(int(e.PID), fd) })
	}
	if e.Type == event.TaskExit {
		delete(s.py.pending, e.ChildTID)
		if e.GroupDead {
			delete(s.spaces, e.PID)
			s.procGone(e.PID)
			s.forgetMountNS(e.PID)
			s.py.tracker.Exit(e.PID)
		}
	}
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
	return nil
}

func (s *Session) space(pid uint32) *symbolize.AddressSpace {
	as := s.spaces[pid]
	if as == nil {
		as = &symbolize.AddressSpace{}
		s.spaces[pid] = as
	}
	return as
}

// execImage rebuilds an address space after exec: the kernel mapped the
// executable and its interpreter, and /proc may be gone before we look.
func (s *Session) execImage(pid uint32, exe string, atEntry, atBase uint64) {
	as := s.space(pid)
	as.Reset()
	if exe == "" {
		return
	}
	exe = s.hostPath(pid, exe)
	bias, err := symbolize.EntryBias(s.cache, exe, atEntry)
	if err != nil {
		s.log.Debug("executable bias", "exe", exe, "err", err)
		return
	}
	maps, err := symbolize.ImageMappings(s.cache, exe, bias)
	if err == nil {
		for _, m := range maps {
			as.Map(m)
			s.py.tracker.Mapped(pid, m.Path, m.Start, m.Offset)
		}
	}
	interp, err := symbolize.Interp(s.cache, exe)
	if err != nil || interp == "" || atBase == 0 {
		return
	}
	interp = s.hostPath(pid, interp)
	if maps, err := symbolize.ImageMappings(s.cache, interp, atBase); err == nil {
		for _, m := range maps {
			as.Map(m)
		}
	}
}

// keep interns locs, or counts them dropped when the table is full.
func (s *Session) keep(locs []symbolize.Location) event.StackID {
	id, ok := s.stacks.Intern(locs)
	if !ok {
		s.stacksDropped++
	}
	return id
}

const maxFrames = 64

// Counters returns the kernel side's counters.
func (s *Session) Counters() (tracer.Counters, error) { return s.tr.Counters() }

// With runs fn with the aggregator while no event is being applied.
func (s *Session) With(fn func(a *aggregator.Aggregator)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.agg)
}

// BadRecords is how many ring buffer records failed to decode.
func (s *Session) BadRecords() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badRecs
}

// SampleGrowth records the outstanding count of every site; call it at a
// steady pace. A site's growth is its count now minus the lowest seen.
func (s *Session) SampleGrowth() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.agg.Outstanding()
	for id := range s.low {
		if _, ok := now[id]; !ok {
			s.low[id] = 0
		}
	}
	for id, n := range now {
		low := s.low[id] // a site unseen so far had none at the start
		if n < low {
			low = n
		}
		s.low[id] = low
		s.growth[id] = n - low
	}
	for id := range s.growth {
		if _, ok := now[id]; !ok {
			s.growth[id] = 0
		}
	}
	mapped := s.agg.MappedLive()
	for id := range s.mlow {
		if _, ok := mapped[id]; !ok {
			s.mlow[id], s.mgrowth[id] = 0, 0
		}
	}
	for id, m := range mapped {
		low := s.mlow[id] // a site unseen so far had none at the start
		low = min(low, m.Bytes)
		s.mlow[id] = low
		s.mgrowth[id] = m.Bytes - low
	}
}

// Compact forgets the stacks that no live handle or untaken leak refers to
// and that were not used for idle (measured at Compact calls, so call it at
// a steady pace), with the session's growth state for them, and returns
// their ids: a caller keeping state per stack drops it. Ids are never
// reused. In run mode it does nothing: every leak is kept for the end.
func (s *Session) Compact(now time.Time, idle time.Duration) []event.StackID {
	if s.opts.Mode == aggregator.ModeRun {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.agg.StacksInUse()
	gone := s.stacks.Evict(now, idle, func(id event.StackID) bool {
		_, ok := in[id]
		return ok
	})
	for _, id := range gone {
		delete(s.growth, id)
		delete(s.low, id)
		delete(s.mgrowth, id)
		delete(s.mlow, id)
	}
	return gone
}

// resolveTarget makes a file target absolute when the kernel side only had a
// relative path or a dentry name (openat relative to a dirfd, open_by_handle_at,
// fds received through SCM_RIGHTS). The link is taken only if it still names the
// same file, so a racing close and reuse cannot mislabel the handle.
func resolveTarget(e *event.Event) {
	if (e.Kind != event.KindFile && e.Kind != event.KindDir) || strings.HasPrefix(e.Target, "/") || e.Target == "" {
		return
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", e.PID, e.FD))
	if err != nil || !strings.HasPrefix(link, "/") || filepath.Base(link) != filepath.Base(e.Target) {
		return
	}
	e.Target = link
}

// hostPath turns a path in pid's mount namespace into one leaktrace can open:
// a process in a container (another mount namespace) has its files under
// /proc/PID/root. Display strips that again (displayPath).
func (s *Session) hostPath(pid uint32, path string) string {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "/proc/") {
		return path
	}
	m, ok := s.mntns[pid]
	if !ok {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		m = s.learnMountNS(pid, ns)
	}
	if m.ns == "" || m.ns == s.selfNS {
		return path // ours, or unknown (the process is gone): take it as ours
	}
	via, root := pid, m.root
	if root == "" {
		// Gone before Go looked: a process of its namespace that lives
		// has the same files.
		if p, ok := s.nsLive[m.ns]; ok && p != pid {
			via, root = p, s.mntns[p].root
		}
	}
	// The kernel's path runs up to its mount namespace's root; a process
	// chrooted inside that namespace has its own root below it.
	if root != "" && root != "/" {
		if rest, ok := strings.CutPrefix(path, root); ok && strings.HasPrefix(rest, "/") {
			path = rest
		}
	}
	return fmt.Sprintf("/proc/%d/root%s", via, path)
}

// forgetMountNS drops what Go knew of pid's namespace (exec, exit).
func (s *Session) forgetMountNS(pid uint32) {
	if m, ok := s.mntns[pid]; ok && s.nsLive[m.ns] == pid {
		delete(s.nsLive, m.ns)
	}
	delete(s.mntns, pid)
}

// mountNS is a process's mount namespace and its root directory as its own
// namespace names it ("/" unless chrooted).
type mountNS struct {
	ns, root string
}

// learnMountNS records that pid runs in mount namespace ns (as
// /proc/PID/ns/mnt names it, "" unknown).
func (s *Session) learnMountNS(pid uint32, ns string) mountNS {
	if s.mntns == nil {
		s.mntns = make(map[uint32]mountNS)
		// This thread's, not /proc/self's (the main thread's): the tracer
		// may have left the main thread wedged in a private namespace
		// (tracer.syscallTracepointIDs), and every process would then look
		// like a container's, its files read again under /proc/PID/root.
		s.selfNS, _ = os.Readlink("/proc/thread-self/ns/mnt")
	}
	m := mountNS{ns: ns}
	if m.ns != "" && m.ns != s.selfNS {
		// Only a process of another namespace needs its root: most share
		// ours, and a host of short-lived processes asks for each new one.
		m.root, _ = os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		if _, ok := s.nsLive[m.ns]; !ok && m.root != "" {
			if s.nsLive == nil {
				s.nsLive = make(map[string]uint32)
			}
			s.nsLive[m.ns] = pid
		}
	}
	s.mntns[pid] = m
	return m
}

// displayPath undoes hostPath for reports: users know a file by the path its
// own process sees.
func displayPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return p
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 || strings.Trim(rest[:i], "0123456789") != "" {
		return p
	}
	if tail, ok := strings.CutPrefix(rest[i:], "/root/"); ok {
		return "/" + tail
	}
	return p
}
