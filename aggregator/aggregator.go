// Package aggregator keeps, from a stream of events, every traced process's fd
// table, threads and children, pairs each handle's creation with its release,
// and says which handles leaked. It is pure Go and deterministic: the same
// events give the same result, and tests feed it synthetic streams.
package aggregator

import (
	"sort"
	"strings"

	"github.com/leaktrace/leaktrace/event"
)

// Mode selects what a leak is.
type Mode int

const (
	// ModeRun: a handle still open when its process (or shared table) ended.
	ModeRun Mode = iota
	// ModeAttach: a handle a live process has held longer than MinAge. What
	// a process held when it exited is summed apart (Held), never a leak.
	ModeAttach
)

// Config tunes the aggregator.
type Config struct {
	Mode   Mode
	MinAge uint64 // ns; attach: younger outstanding handles are not leaks
}

// Why a handle is reported.
const (
	ReasonOpenAtExit     = "open at exit"
	ReasonThreadAtExit   = "thread running at exit"
	ReasonZombie         = "zombie: exited, never reaped"
	ReasonOutlivedParent = "outlived its parent"
	ReasonOutstanding    = "outstanding"
	// ReasonPyShutdown: closed by the Python interpreter's finalization, not
	// by the program, which still held the handle when it ended.
	ReasonPyShutdown = "closed by interpreter shutdown"
)

// Handle is one live handle: an fd, a thread or a child process.
type Handle struct {
	FD        int32  // -1 for threads and processes
	TID       uint32 // threads and processes: their id
	Kind      event.Kind
	Inherited bool // a copy made at fork
	Outside   bool // open before tracing: never a leak
	// Finalizing: created once Python finalization had begun; the
	// interpreter's shutdown closing it is no leak.
	Finalizing bool
	Stack      event.StackID
	Created    uint64
	PID        uint32 // the process whose handle this is
	Target     string
	exited     uint64 // processes: when the child exited (zombie since)
}

// Leak is a handle reported as leaked.
type Leak struct {
	Handle
	Comm   string
	Exe    string
	Ended  uint64 // when it was judged: exit time, or the report's time
	Reason string
	// HandedOver: an inherited copy whose original no traced process holds
	// any more (attach): the child's own handle now, so not Inherited.
	HandedOver bool
}

type table struct {
	id    uint64
	fds   map[int32]*Handle
	users map[uint32]struct{} // tids using the table
	owner uint32
	dead  bool
	// Threads race: a close's record can reach us after the record of an open
	// on another thread that got the same fd number, or before the record of
	// an open whose fd it closed. superseded counts, per fd, releases known to
	// be in flight (an allocating syscall returned an fd we still held);
	// orphans holds, per fd, the last successful close that found nothing to
	// release. Both are allocated on first race.
	superseded map[int32]supersede
	orphans    map[int32]orphanClose
}

// supersede counts releases of fd in flight; each must have entered its
// syscall before the newest open that superseded a handle returned.
type supersede struct {
	n      int
	before uint64
}

// orphanClose is a close that released an fd we had no record of yet.
type orphanClose struct {
	enter uint64 // when the close was entered (0: unknown)
	exit  uint64 // when the close returned
	file  uint64 // the file it found at the fd (0: unknown)
	tid   uint32
}

type process struct {
	pid, ppid  uint32
	comm, exe  string
	table      *table
	threads    map[uint32]*Handle // tid -> thread handle (creation stack)
	children   map[uint32]*Handle // child pid -> process handle
	exiting    bool
	exited     bool
	exitCode   int32
	leaked     int
	held       int // handles it held as it exited (attach)
	reconciled bool
	autoreap   bool
	started    uint64
	maps       []mapping // traced memory mappings, sorted by start (mapping.go)
}

// Aggregator is the state. It is not safe for concurrent use.
type Aggregator struct {
	cfg    Config
	procs  map[uint32]*process
	tables map[uint64]*table
	gone   []*process // exited processes, for the summary
	leaks  []Leak
	held   HeldAtExit            // attach: what exited processes held
	sites  map[event.StackID]int // outstanding handles per creating stack
	spare  []*Handle             // released fd handles, for reuse
	now    uint64
	events uint64
	// Memory mappings (mapping.go): bytes per creating stack that live
	// processes have mapped, and that processes had mapped as they exited.
	mapLive        map[event.StackID]MappedSite
	mapHeld        map[event.StackID]MappedSite
	mapHeldTargets map[event.StackID][]string
	mapScratch     []mapping
}

// New returns an empty aggregator.
func New(cfg Config) *Aggregator {
	return &Aggregator{
		cfg:    cfg,
		procs:  make(map[uint32]*process),
		tables: make(map[uint64]*table),
		sites:  make(map[event.StackID]int),

		mapLive:        make(map[event.StackID]MappedSite),
		mapHeld:        make(map[event.StackID]MappedSite),
		mapHeldTargets: make(map[event.StackID][]string),
	}
}

// Now is the time of the latest event seen.
func (a *Aggregator) Now() uint64 { return a.now }

// Events is the count of events applied.
func (a *Aggregator) Events() uint64 { return a.events }

func newTable(id uint64, owner uint32) *table {
	return &table{id: id, fds: make(map[int32]*Handle), users: make(map[uint32]struct{}), owner: owner}
}

func (a *Aggregator) newProcess(pid, ppid uint32, comm string, t uint64) *process {
	if old := a.procs[pid]; old != nil {
		// A pid reused: whatever the old process still held is judged now.
		a.finish(old, t)
	}
	p := &process{pid: pid, ppid: ppid, comm: comm, threads: make(map[uint32]*Handle),
		children: make(map[uint32]*Handle), started: t}
	a.procs[pid] = p
	return p
}

// proc returns the process of an event, creating it (with an empty table) when
// it was never seen: its earlier history is unknown, not wrong.
func (a *Aggregator) proc(e *event.Event) *process {
	p := a.procs[e.PID]
	if p == nil {
		p = a.newProcess(e.PID, 0, e.Comm, e.Time)
		p.table = newTable(e.Files, e.PID)
		p.table.users[e.TID] = struct{}{}
		if e.Files != 0 {
			a.tables[e.Files] = p.table
		}
	}
	if e.Comm != "" {
		p.comm = e.Comm
	}
	a.tableOf(p, e.Files)
	return p
}

// tableOf keeps p's table in step with the kernel's identity for it: a new
// files_struct (unshare, exec of a CLONE_FILES task) is a private copy.
func (a *Aggregator) tableOf(p *process, files uint64) *table {
	t := p.table
	if files == 0 || t.id == files {
		return t
	}
	if t.id == 0 {
		// Seeded from /proc: the first event names the table.
		t.id = files
		a.tables[files] = t
		return t
	}
	if known := a.tables[files]; known != nil && !known.dead {
		a.leaveTable(p, t)
		p.table = known
		for tid := range p.threads {
			known.users[tid] = struct{}{}
		}
		known.users[p.pid] = struct{}{}
		return known
	}
	c := newTable(files, p.pid)
	for fd, h := range t.fds {
		cp := *h
		cp.PID = p.pid // the private copy is p's alone
		c.fds[fd] = &cp
		a.sites[cp.Stack]++
	}
	for tid := range t.users {
		if a.tidOf(p, tid) {
			c.users[tid] = struct{}{}
			delete(t.users, tid)
		}
	}
	c.users[p.pid] = struct{}{}
	a.tables[files] = c
	p.table = c
	if len(t.users) == 0 {
		a.dropTable(t)
	}
	return c
}

func (a *Aggregator) tidOf(p *process, tid uint32) bool {
	if tid == p.pid {
		return true
	}
	_, ok := p.threads[tid]
	return ok
}

func (a *Aggregator) leaveTable(p *process, t *table) {
	for tid := range t.users {
		if a.tidOf(p, tid) {
			delete(t.users, tid)
		}
	}
}

func (a *Aggregator) add(t *table, h *Handle) {
	if old := t.fds[h.FD]; old != nil {
		// A handle we did not see released (lost or untraced release).
		a.release(t, old)
	}
	t.fds[h.FD] = h
	a.sites[h.Stack]++
}

// install adds a handle made by e, minding releases still in flight on other
// threads. allocated says the kernel chose the number (lowest free fd): it
// cannot have been in use, so a handle we still hold there was released by a
// close whose record is yet to come. Otherwise (dup2, dup3) an open target is
// closed by the call itself.
func (a *Aggregator) install(t *table, h *Handle, e *event.Event, allocated bool) {
	if e.Flags&event.FlagGone != 0 {
		// Another thread closed it before the syscall returned: its
		// close record releases nothing we hold.
		delete(t.orphans, h.FD)
		return
	}
	if o, ok := t.orphans[h.FD]; ok {
		delete(t.orphans, h.FD)
		if e.TID != o.tid && releasedBy(e, o) {
			// A close on another thread released this fd after the open
			// installed it and before the open's record was sent.
			return
		}
	}
	if old := t.fds[h.FD]; old != nil && allocated {
		if t.superseded == nil {
			t.superseded = make(map[int32]supersede)
		}
		s := t.superseded[h.FD]
		if !old.Outside && old.Created > e.Time {
			// e's record comes after that of a newer handle at its number
			// (records of different CPUs cross): the kernel gave the
			// number again, so e's handle was released in between, by a
			// release whose record is yet to come.
			t.superseded[h.FD] = supersede{n: s.n + 1, before: max(s.before, old.Created)}
			return
		}
		t.superseded[h.FD] = supersede{n: s.n + 1, before: e.Time}
	}
	a.add(t, h)
}

// releasedBy reports whether close o, whose record came first, released the
// handle open e made. With e's enter time: o returned after e began, so it
// can have released what e installed. Without it (e's exit found the fd
// still installed, event.FlagChecked): o began after e returned, or o
// found e's file at the fd (it began between the install and e's exit); a
// close that began before then and found another file released an older
// handle at that number, as a close removes the fd first thing.
func releasedBy(e *event.Event, o orphanClose) bool {
	if e.Enter != 0 {
		return e.Enter < o.exit
	}
	if e.Flags&event.FlagChecked == 0 {
		return false
	}
	// A close that entered between the fd's install and e's exit found
	// e's very file there.
	return o.enter >= e.Time || o.file != 0 && o.file == e.File
}

// closeFD applies a release of fd in t by e (close or close_range), whose
// syscall returned at exit (0: no orphan is recorded for it).
func (a *Aggregator) closeFD(p *process, t *table, fd int32, e *event.Event, exit uint64) {
	enter, tid := e.Enter, e.TID
	if s, ok := t.superseded[fd]; ok {
		if enter == 0 || enter < s.before {
			// The release of a handle already replaced by a newer one.
			if s.n == 1 {
				delete(t.superseded, fd)
			} else {
				t.superseded[fd] = supersede{n: s.n - 1, before: s.before}
			}
			return
		}
		// Entered after the newer handle existed: this is a release of
		// it. The one we wait for may still come; if it never does (lost,
		// or not a syscall we follow), the entry can only match releases
		// entered before it was made, so it is harmless.
	}
	if h := t.fds[fd]; h != nil {
		a.shutdownClose(p, h, e)
		a.release(t, h)
		return
	}
	if exit != 0 {
		if t.orphans == nil {
			t.orphans = make(map[int32]orphanClose)
		}
		t.orphans[fd] = orphanClose{enter: enter, exit: exit, file: e.File, tid: tid}
	}
}

func (a *Aggregator) release(t *table, h *Handle) {
	a.dropSite(h.Stack)
	if t.fds[h.FD] == h {
		delete(t.fds, h.FD)
		// Each handle is in one table only (copies are new handles), so
		// nothing refers to it now: reuse it for the next open.
		if len(a.spare) < maxSpare {
			*h = Handle{}
			a.spare = append(a.spare, h)
		}
	}
}

// maxSpare bounds the released handles kept for reuse.
const maxSpare = 4096

// newHandle returns a zero handle, reusing a released one when it can: an
// open and close then allocate nothing.
func (a *Aggregator) newHandle() *Handle {
	if n := len(a.spare); n > 0 {
		h := a.spare[n-1]
		a.spare = a.spare[:n-1]
		return h
	}
	return new(Handle)
}

// dropSite counts one handle of a site as released.
func (a *Aggregator) dropSite(s event.StackID) {
	a.sites[s]--
	if a.sites[s] <= 0 {
		delete(a.sites, s)
	}
}

// dropTable forgets a table whose handles live on in a copy: nothing leaked.
func (a *Aggregator) dropTable(t *table) {
	if t.dead {
		return
	}
	t.dead = true
	if t.id != 0 && a.tables[t.id] == t {
		delete(a.tables, t.id)
	}
	for _, h := range t.fds {
		a.release(t, h)
	}
}

// copiedFrom is the handle whose description a copy (dup, dup2, F_DUPFD)
// made by e takes, or nil. The source knows the path it was opened with; a
// socket's fresh description from the kernel is the more current; a source
// of another kind is a record that raced a reuse.
func copiedFrom(t *table, e *event.Event) *Handle {
	if e.Install != event.InstallDup && e.Install != event.InstallDupOnto {
		return nil
	}
	src := t.fds[e.FD2]
	if src == nil || src.Kind == event.KindSocket || (src.Kind != e.Kind && e.Kind != event.KindUnknown) {
		return nil
	}
	return src
}

// TakesSourcePath reports whether the copy e makes will take its source's
// absolute path (and so needs no other).
func (a *Aggregator) TakesSourcePath(e *event.Event) bool {
	p := a.procs[e.PID]
	if p == nil || p.table == nil {
		return false
	}
	src := copiedFrom(p.table, e)
	return src != nil && strings.HasPrefix(src.Target, "/")
}

// Apply folds one event into the state.
func (a *Aggregator) Apply(e *event.Event) {
	a.events++
	if e.Time > a.now {
		a.now = e.Time
	}
	switch e.Type {
	case event.FDOpen:
		a.fdOpen(e)
	case event.FDClose:
		p := a.proc(e)
		a.closeFD(p, p.table, e.FD, e, e.Time)
	case event.CloseRange:
		a.closeRange(e)
	case event.FDUpdate:
		p := a.proc(e)
		if h := p.table.fds[e.FD]; h != nil && e.Target != "" && e.Kind == h.Kind {
			h.Target = e.Target
		}
	case event.TaskNew:
		a.taskNew(e)
	case event.Exec:
		a.exec(e)
	case event.TaskExit:
		a.taskExit(e)
	case event.ExitGroup:
		if p := a.procs[e.PID]; p != nil {
			a.exitGroup(p, e.TID, e.Time)
		}
	case event.MapNew:
		a.mapNew(e)
	case event.MapFree:
		a.mapFree(e)
	case event.MapMove:
		a.mapMove(e)
	case event.MapProt:
		a.mapProt(e)
	case event.Reap:
		if p := a.procs[e.PID]; p != nil {
			if h := p.children[e.ChildPID]; h != nil {
				delete(p.children, e.ChildPID)
				a.dropSite(h.Stack)
			}
		}
	}
}

func (a *Aggregator) fdOpen(e *event.Event) {
	p := a.proc(e)
	t := p.table
	h := a.newHandle()
	*h = Handle{FD: e.FD, Kind: e.Kind, Target: e.Target, Stack: e.Stack, Created: e.Time, PID: p.pid,
		Finalizing: e.Flags&event.FlagPyFinalizing != 0}
	allocated := true
	switch e.Install {
	case event.InstallDup, event.InstallDupOnto:
		if e.FD == e.FD2 {
			return // dup2(fd, fd) changes nothing
		}
		allocated = e.Install == event.InstallDup
		if src := copiedFrom(t, e); src != nil {
			h.Target = src.Target
			h.Kind = src.Kind
		}
	}
	a.install(t, h, e, allocated)
	if e.FD2 >= 0 && e.Install == event.InstallPair {
		h2 := *h
		h2.FD = e.FD2
		if e.Target2 != "" {
			h2.Target = e.Target2
		}
		a.install(t, &h2, e, true)
	}
}

func (a *Aggregator) closeRange(e *event.Event) {
	p := a.proc(e)
	if e.Flags&event.FlagOnlyCloexec != 0 {
		return
	}
	t := p.table
	if e.Flags&event.FlagUnshare != 0 && len(t.users) > 1 {
		// The kernel gives the caller a private copy first; its id comes with
		// the caller's next event, so copy under a placeholder now.
		t = a.privateCopy(p)
	}
	var doomed []int32
	for fd := range t.fds {
		if fd >= e.FD && fd <= e.FD2 {
			doomed = append(doomed, fd)
		}
	}
	for fd := range t.superseded {
		if fd >= e.FD && fd <= e.FD2 && t.fds[fd] == nil {
			doomed = append(doomed, fd)
		}
	}
	for _, fd := range doomed {
		a.closeFD(p, t, fd, e, 0)
	}
}

func (a *Aggregator) privateCopy(p *process) *table {
	old := p.table
	c := newTable(0, p.pid)
	for fd, h := range old.fds {
		cp := *h
		c.fds[fd] = &cp
		a.sites[cp.Stack]++
	}
	a.leaveTable(p, old)
	if len(old.users) == 0 {
		a.dropTable(old)
	}
	c.users[p.pid] = struct{}{}
	for tid := range p.threads {
		c.users[tid] = struct{}{}
	}
	p.table = c
	return c
}

func (a *Aggregator) taskNew(e *event.Event) {
	parent := a.proc(e)
	h := &Handle{FD: -1, TID: e.ChildTID, Kind: e.Kind, Stack: e.Stack, Created: e.Time, PID: parent.pid}
	if e.IsThread {
		parent.threads[e.ChildTID] = h
		a.sites[h.Stack]++
		if e.ChildFiles == parent.table.id || e.ChildFiles == 0 {
			parent.table.users[e.ChildTID] = struct{}{}
		}
		return
	}
	c := a.newProcess(e.ChildPID, parent.pid, parent.comm, e.Time)
	c.exe = parent.exe
	a.inheritMaps(parent, c)
	if e.ChildFiles != 0 && e.ChildFiles == parent.table.id {
		c.table = parent.table // CLONE_FILES: one table, two processes
	} else {
		c.table = newTable(e.ChildFiles, c.pid)
		for fd, ph := range parent.table.fds {
			cp := *ph
			cp.PID = c.pid
			cp.Inherited = true
			c.table.fds[fd] = &cp
			a.sites[cp.Stack]++
		}
		if e.ChildFiles != 0 {
			a.tables[e.ChildFiles] = c.table
		}
	}
	c.table.users[c.pid] = struct{}{}
	parent.children[c.pid] = h
	a.sites[h.Stack]++
}

func (a *Aggregator) exec(e *event.Event) {
	p := a.proc(e)
	if e.Exe != "" {
		p.exe = e.Exe
	}
	// A new address space: what was mapped before is gone (the kernel's
	// own mappings of the new image are not followed).
	a.unmapAll(p, false)
	// Exec leaves one thread: the others exited before this event.
	for tid, h := range p.threads {
		a.dropThread(p, tid, h)
	}
	t := p.table
	var doomed []*Handle
	limit := int32(len(e.OpenFDs) * 64)
	for fd, h := range t.fds {
		if fd < limit && !e.FDOpenAfterExec(fd) {
			doomed = append(doomed, h)
		}
	}
	for _, h := range doomed {
		a.release(t, h)
	}
	// The table is the kernel's word now: races pending before are settled.
	t.superseded, t.orphans = nil, nil
	if !e.OpenFDsComplete {
		p.reconciled = true // fds above what the kernel sent are unverified
	}
	for w, bits := range e.OpenFDs {
		for b := 0; bits != 0 && b < 64; b++ {
			if bits&(1<<b) == 0 {
				continue
			}
			fd := int32(w*64 + b)
			if t.fds[fd] == nil {
				// Open, but we never saw it made: from before tracing.
				a.add(t, &Handle{FD: fd, Outside: true, Created: e.Time, PID: p.pid})
			}
		}
	}
}

func (a *Aggregator) dropThread(p *process, tid uint32, h *Handle) {
	delete(p.threads, tid)
	delete(p.table.users, tid)
	a.sites[h.Stack]--
	if a.sites[h.Stack] <= 0 {
		delete(a.sites, h.Stack)
	}
}

// exitGroup: every thread but the caller is still running as the process ends.
func (a *Aggregator) exitGroup(p *process, caller uint32, t uint64) {
	if p.exiting {
		return
	}
	p.exiting = true
	for tid, h := range p.threads {
		if tid == caller {
			continue
		}
		a.report(p, h, t, ReasonThreadAtExit)
		a.dropThread(p, tid, h)
	}
}

func (a *Aggregator) taskExit(e *event.Event) {
	p := a.procs[e.PID]
	if p == nil {
		return
	}
	tid := e.ChildTID
	if !p.exiting && e.ExitCode&0x7f != 0 {
		// Killed by a signal: the threads alive now die with the process.
		a.exitGroup(p, tid, e.Time)
	}
	if h := p.threads[tid]; h != nil {
		a.dropThread(p, tid, h)
	}
	delete(p.table.users, tid)
	if !e.GroupDead {
		return
	}
	p.exited = true
	p.exitCode = e.ExitCode
	p.autoreap = e.Autoreap
	a.finish(p, e.Time)
}

// finish ends a process: its table if nobody else uses it, its threads, and
// the children it holds.
func (a *Aggregator) finish(p *process, t uint64) {
	if a.procs[p.pid] != p {
		return
	}
	delete(a.procs, p.pid)
	a.gone = append(a.gone, p)
	a.unmapAll(p, true)
	for tid, h := range p.threads {
		a.report(p, h, t, ReasonThreadAtExit)
		a.dropThread(p, tid, h)
	}
	a.leaveTable(p, p.table)
	delete(p.table.users, p.pid)
	if len(p.table.users) == 0 {
		a.tableDies(p.table, p, t)
	}
	for pid, h := range p.children {
		c := a.procs[pid]
		switch {
		case c != nil && !c.exited:
			a.report(p, h, t, ReasonOutlivedParent)
		case c == nil && h.exited != 0:
			a.report(p, h, t, ReasonZombie)
		}
		delete(p.children, pid)
		a.sites[h.Stack]--
		if a.sites[h.Stack] <= 0 {
			delete(a.sites, h.Stack)
		}
	}
	// The parent now holds a zombie, unless the kernel reaps it at once.
	if parent := a.procs[p.ppid]; parent != nil {
		if h := parent.children[p.pid]; h != nil {
			if p.autoreap {
				delete(parent.children, p.pid)
				a.dropSite(h.Stack)
			} else {
				h.exited = t
			}
		}
	}
}

// tableDies reports what the table still held.
func (a *Aggregator) tableDies(tb *table, p *process, t uint64) {
	if tb.dead {
		return
	}
	tb.dead = true
	if tb.id != 0 && a.tables[tb.id] == tb {
		delete(a.tables, tb.id)
	}
	fds := make([]int32, 0, len(tb.fds))
	for fd := range tb.fds {
		fds = append(fds, fd)
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i] < fds[j] })
	for _, fd := range fds {
		h := tb.fds[fd]
		if countable(h) {
			owner := p
			if q := a.procs[h.PID]; q != nil {
				owner = q
			}
			a.report(owner, h, t, ReasonOpenAtExit)
		}
		a.release(tb, h)
	}
}

// shutdownClose reports a handle that the Python interpreter closed while
// finalizing: the program never released it (an atexit handler's close runs
// before finalization and is a release). A handle created once finalization
// had begun is exit-time code's own (C destructors, preloaded libraries,
// coverage writers): its close balances it.
func (a *Aggregator) shutdownClose(p *process, h *Handle, e *event.Event) {
	if e.Flags&event.FlagPyShutdown == 0 || h.Finalizing || !countable(h) {
		return
	}
	owner := p
	if q := a.procs[h.PID]; q != nil && q.table == p.table {
		owner = q
	}
	a.report(owner, h, e.Time, ReasonPyShutdown)
}

// countable: stdin/out/err and handles from before tracing never count.
func countable(h *Handle) bool {
	return !h.Outside && !(h.FD >= 0 && h.FD <= 2)
}

func (a *Aggregator) report(p *process, h *Handle, t uint64, reason string) {
	if a.cfg.Mode == ModeAttach {
		a.hold(p, h)
		return
	}
	p.leaked++
	a.leaks = append(a.leaks, Leak{Handle: *h, Comm: p.comm, Exe: p.exe, Ended: t, Reason: reason})
}
