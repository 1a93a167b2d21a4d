//go:build linux

// Package tracer loads leaktrace's BPF programs, attaches them, keeps the
// in-kernel pid filter, and reads and decodes the ring buffer. It knows
// nothing of leaks.
package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/bpf"
)

// Config tunes the kernel side.
type Config struct {
	// RingBufferBytes is the ring buffer's size, a power of two of at least a
	// page. 0 means DefaultRingBufferBytes.
	RingBufferBytes int
	// StackBytes is how much of the user stack is copied per creation event
	// for unwinding, at most MaxStackBytes. 0 means DefaultStackBytes;
	// NoStackCopy copies none (stacks then come from the frame-pointer walk).
	StackBytes int
	// TraceAll traces every process on the host but leaktrace itself, or,
	// when Filter selects anything, only what it selects.
	TraceAll bool
	// Filter narrows TraceAll in the kernel (the agent's --comm, --cgroup,
	// --exe); pids given to Trace pass it too.
	Filter Filter
	// PairInKernel keeps a creation record in the kernel for up to
	// PairWindow: a close of that fd (any thread) drops both records. What
	// is still open then is sent, so a handle held longer is live within
	// 1.5 windows. Only a record whose stack is a site Go knows waits;
	// pipes and socketpairs, copies (dup, dup2, F_DUPFD) and fds received
	// over sockets are always sent at once (bpf/pair.h).
	PairInKernel bool
	// PairWindow is how long a record may wait for its close; 0 means
	// DefaultPairWindow.
	PairWindow time.Duration
	// PairSlots bounds the records waiting at once (past it they are sent
	// at once); 0 means DefaultPairSlots.
	PairSlots int
	// Hooks selects how syscalls are hooked (HooksRaw by default).
	Hooks Hooks
	// LiveOnly: the reader keeps live processes only (the agent), so what
	// a process still had mapped as it exited is settled in the kernel
	// (counted at its site) instead of sent (run and attach report it),
	// and an exec or exit does not wake the reader: it reads them at its
	// next poll.
	LiveOnly bool
	// NoStackSites turns off unwinding in the kernel: every stack is sent
	// as registers and a copy (Go gives no rules, LearnRules), and so no
	// record waits for its close.
	NoStackSites bool
}

// normalize applies defaults and checks ranges.
func (cfg *Config) normalize() error {
	if cfg.RingBufferBytes == 0 {
		cfg.RingBufferBytes = DefaultRingBufferBytes
	}
	switch cfg.StackBytes {
	case 0:
		cfg.StackBytes = DefaultStackBytes
	case NoStackCopy:
		cfg.StackBytes = 0
	}
	if cfg.PairWindow == 0 {
		cfg.PairWindow = DefaultPairWindow
	}
	if cfg.PairSlots == 0 {
		cfg.PairSlots = DefaultPairSlots
	}
	if cfg.PairWindow < time.Millisecond || cfg.PairWindow > time.Minute {
		return fmt.Errorf("pairing window %s out of range 1ms..1m", cfg.PairWindow)
	}
	if cfg.PairSlots < 1 || cfg.PairSlots > 1<<20 {
		return fmt.Errorf("pairing slots %d out of range 1..%d", cfg.PairSlots, 1<<20)
	}
	if cfg.StackBytes < 0 || cfg.StackBytes > MaxStackBytes {
		return fmt.Errorf("stack bytes %d out of range 0..%d", cfg.StackBytes, MaxStackBytes)
	}
	rb := cfg.RingBufferBytes
	if rb < os.Getpagesize() || rb&(rb-1) != 0 {
		return fmt.Errorf("ring buffer size %d is not a power of two of at least a page", rb)
	}
	return nil
}

// Filter selects processes in the kernel. A process is traced when any one
// entry matches it, or its parent was traced when it was forked.
type Filter struct {
	Comms   []string // the process's comm (its main thread's name), as /proc/PID/comm shows it
	Cgroups []uint64 // cgroup v2 ids: the inode number of the cgroup's directory
	Exes    []ExeID  // executables, by file identity
	// Pids only marks the filter active: the pids themselves enter through Trace.
	Pids bool
}

// Active reports whether the filter narrows tracing at all.
func (f Filter) Active() bool {
	return f.Pids || len(f.Comms) > 0 || len(f.Cgroups) > 0 || len(f.Exes) > 0
}

// ExeID names an executable file the way the kernel sees it.
type ExeID struct {
	Ino uint64
	Dev uint32 // the kernel's encoding: major<<20 | minor
}

// MaxFilterEntries bounds each of the filter's lists (the kernel maps' size).
const MaxFilterEntries = 256

const (
	DefaultRingBufferBytes = 32 << 20
	// DefaultStackBytes: a copy is sent while the kernel learns a site,
	// by every new process for each of its sites (an exec's loader and libc
	// among them), so it stays short; the kernel learns the deeper frames
	// from the next copies, taken where it stopped.
	DefaultStackBytes = 2048
	// DefaultPairWindow: far below any --min-age, far above a request.
	DefaultPairWindow = 100 * time.Millisecond
	// DefaultPairSlots: a table-wide flush (fork, exec, exit) walks every
	// slot's bucket, so the map stays small; at most a window of
	// creations wait at once.
	DefaultPairSlots = 1024
	MaxStackBytes    = 8192
	NoStackCopy      = -1 // Config.StackBytes: copy no stack
)

// Tracer is a loaded and attached set of programs.
type Tracer struct {
	// LoadTime is how long the kernel took to verify and load the programs.
	LoadTime time.Duration

	maps    bpf.LeaktraceMaps
	common  commonPrograms
	hooks   Hooks // what is attached: HooksPerSyscall only when it could be
	raw     rawPrograms
	tp      perSyscallPrograms
	links   []link.Link
	perfFDs []int // per-syscall hooks
	rd      *ringbuf.Reader
	// ring is the ring buffer's fd again, in Go's netpoller: ReadUntil
	// waits there for records (waitReadable). nil: rd's own wait.
	ring     *os.File
	ringConn syscall.RawConn
	closed   atomic.Bool // Close began: a failed wait is ErrClosed
	// sweepEvery is half the pairing window; 0 when pairing is off.
	sweepEvery time.Duration

	// pyMu orders SetPython's entry before its generation (pyGen): the
	// kernel's per-CPU process memos must see the entry once they see
	// the generation move.
	pyMu  sync.Mutex
	pyGen uint64

	// unread is the ring-buffer bytes ReadUntil left when its drain was
	// cut short (atomic: Counters may be read from another goroutine).
	unread atomic.Uint64

	closeOnce sync.Once
}

// Error is a failure the user can act on: Hint says what to do.
type Error struct {
	Msg  string
	Hint string
	Err  error
}

func (e *Error) Error() string {
	if e.Hint == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Hint
}

func (e *Error) Unwrap() error { return e.Err }

// CheckPrivileges reports, before anything is loaded, the environment problems
// a user can fix: not root, no BTF.
func CheckPrivileges() error {
	if os.Geteuid() != 0 {
		return &Error{Msg: "leaktrace needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE)", Hint: "run it with sudo"}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return &Error{Msg: "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing)", Hint: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2021)", Err: err}
	}
	return nil
}

// New loads and attaches the programs. Nothing is traced until Trace is
// called, unless cfg.TraceAll.
func New(cfg Config) (*Tracer, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("removing memlock limit: %w", err)
	}
	kernel, err := probeKernel()
	if err != nil {
		return nil, err
	}
	spec, err := loadSpec(cfg, kernel)
	if err != nil {
		return nil, err
	}
	t := &Tracer{hooks: cfg.Hooks}
	if cfg.PairInKernel {
		t.sweepEvery = cfg.PairWindow / 2
	}
	var ids map[string]uint64
	if t.hooks == HooksPerSyscall {
		if ids, err = syscallTracepointIDs(); err != nil {
			slog.Warn("per-syscall tracepoints unavailable: hooking every syscall", "err", err)
			t.hooks = HooksRaw
		}
	}
	start := time.Now()
	opts := &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel.btf}}
	// One load, of only the hooks this mode uses.
	if t.hooks == HooksPerSyscall {
		var o struct {
			bpf.LeaktraceMaps
			commonPrograms
			perSyscallPrograms
		}
		err = spec.LoadAndAssign(&o, opts)
		t.maps, t.common, t.tp = o.LeaktraceMaps, o.commonPrograms, o.perSyscallPrograms
	} else {
		var o struct {
			bpf.LeaktraceMaps
			commonPrograms
			rawPrograms
		}
		err = spec.LoadAndAssign(&o, opts)
		t.maps, t.common, t.raw = o.LeaktraceMaps, o.commonPrograms, o.rawPrograms
	}
	if err != nil {
		return nil, refused(err)
	}
	t.LoadTime = time.Since(start)
	if err := t.fillSyscalls(); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.fillFilter(cfg.Filter); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.attachTracing(t.common.SchedProcessFork, t.common.SchedProcessExec, t.common.SchedProcessExit); err != nil {
		t.Close()
		return nil, err
	}
	if t.hooks == HooksPerSyscall {
		err = t.attachPerSyscall(t.tp.SysEnterTp, t.tp.SysExitTp, ids)
	} else {
		err = t.attachTracing(t.raw.SysEnter, t.raw.SysExit)
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	t.rd, err = ringbuf.NewReader(t.maps.Events)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("opening ringbuf reader: %w", err)
	}
	t.ring, t.ringConn = pollable(t.maps.Events.FD())
	return t, nil
}

// pollable registers a copy of fd with Go's netpoller, or returns nil (then
// the ring buffer reader's own epoll_wait waits): the reader idles in that
// wait between records, and a thread blocked in a syscall for milliseconds
// keeps Go's sysmon polling every 20 µs to take its P back, a wakeup that
// cost the agent a third of its CPU on a host starting processes.
func pollable(fd int) (*os.File, syscall.RawConn) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, nil
	}
	f := os.NewFile(uintptr(dup), "ringbuf")
	// A deadline is refused by a file the netpoller did not take.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil
	}
	return f, rc
}

// waitReadable returns once the ring holds a record or d has passed, waiting
// in the netpoller. The kernel wakes waiters only for a backlog or a record
// needed at once (wakeup_bytes); d bounds how long the rest may wait.
func (t *Tracer) waitReadable(d time.Duration) error {
	if t.rd.AvailableBytes() > 0 {
		return nil
	}
	if err := t.ring.SetReadDeadline(time.Now().Add(d)); err != nil {
		if t.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("waiting for the ring buffer: %w", err)
	}
	err := t.ringConn.Read(func(uintptr) bool { return t.rd.AvailableBytes() > 0 })
	switch {
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case t.closed.Load():
		return ErrClosed
	}
	return fmt.Errorf("waiting for the ring buffer: %w", err)
}

// Trace adds a process (thread group id) to the in-kernel filter. Its future
// children are added by the kernel side at fork.
func (t *Tracer) Trace(pid uint32) error {
	if err := t.maps.Traced.Put(pid, uint8(1)); err != nil {
		return fmt.Errorf("adding pid %d to the filter: %w", pid, err)
	}
	return nil
}

// SetPython tells the kernel side where pid's CPython interpreter is, so that
// its Python frames are walked at fd creation and its closes during
// interpreter shutdown are marked.
func (t *Tracer) SetPython(pid uint32, p bpf.LeaktraceLtPyProc) error {
	t.pyMu.Lock()
	defer t.pyMu.Unlock()
	if err := t.maps.PyProcs.Put(pid, &p); err != nil {
		return fmt.Errorf("adding python interpreter of pid %d: %w", pid, err)
	}
	// A CPU's memo may say pid has no interpreter (bpf/stack.h proc_memo).
	t.pyGen++
	if err := t.maps.ProcGen.Put(uint32(1), t.pyGen); err != nil {
		return fmt.Errorf("adding python interpreter of pid %d: telling the kernel's memos: %w", pid, err)
	}
	return nil
}

// ForgetPython removes pid's interpreter; a missing entry is no error.
func (t *Tracer) ForgetPython(pid uint32) error {
	t.pyMu.Lock()
	defer t.pyMu.Unlock()
	if err := t.maps.PyProcs.Delete(pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("removing python interpreter of pid %d: %w", pid, err)
	}
	// A CPU's memo may hold a copy of it.
	t.pyGen++
	if err := t.maps.ProcGen.Put(uint32(1), t.pyGen); err != nil {
		return fmt.Errorf("removing python interpreter of pid %d: telling the kernel's memos: %w", pid, err)
	}
	return nil
}

// fillSyscalls writes the syscall table the kernel side dispatches on.
func (t *Tracer) fillSyscalls() error {
	for i := range Syscalls {
		s := &Syscalls[i]
		if err := t.maps.SysTable.Put(uint32(s.Nr), s.row()); err != nil {
			return fmt.Errorf("writing syscall table row %s: %w", s.Name, err)
		}
	}
	return nil
}

// fillFilter loads the filter's entries before any program is attached.
func (t *Tracer) fillFilter(f Filter) error {
	if n := max(len(f.Comms), len(f.Cgroups), len(f.Exes)); n > MaxFilterEntries {
		return fmt.Errorf("%d filter entries: at most %d of each kind", n, MaxFilterEntries)
	}
	for _, c := range f.Comms {
		var key [16]byte // LT_COMM_LEN: the kernel's comm, NUL-padded
		if len(c) == 0 || len(c) > len(key)-1 {
			return fmt.Errorf("comm %q: must be 1 to %d bytes", c, len(key)-1)
		}
		copy(key[:], c)
		if err := t.maps.CommFilter.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("adding comm %q to the filter: %w", c, err)
		}
	}
	for _, id := range f.Cgroups {
		if err := t.maps.CgroupFilter.Put(id, uint8(1)); err != nil {
			return fmt.Errorf("adding cgroup %d to the filter: %w", id, err)
		}
	}
	for _, e := range f.Exes {
		var key [16]byte // struct exe_key: ino, dev, padding
		binary.NativeEndian.PutUint64(key[0:], e.Ino)
		binary.NativeEndian.PutUint32(key[8:], e.Dev)
		if err := t.maps.ExeFilter.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("adding executable %d:%d to the filter: %w", e.Dev, e.Ino, err)
		}
	}
	return nil
}

// Counters are the kernel side's own counts, summed over CPUs.
type Counters struct {
	Sent         uint64 // records put into the ring buffer
	RingbufFull  uint64 // records lost: ring buffer full
	InflightFull uint64 // syscalls not followed: parking map full
	TracedFull   uint64 // processes not followed: filter map full
	MissedExit   uint64 // syscall exits with no parked enter
	// RightsDropped counts fds received through SCM_RIGHTS beyond what one
	// recvmsg event carries: they are in the process's table but not in ours.
	RightsDropped uint64
	// Paired counts handles opened and closed by one thread's consecutive
	// syscalls, settled in the kernel (PairInKernel).
	Paired uint64
	// Compat counts 32-bit syscalls of traced processes: their numbers and
	// layouts are not followed, so what they did to the fd table is unknown.
	Compat uint64
	// Bytes is the ring-buffer bytes of the records sent.
	Bytes uint64
	// StackSite, StackNew and StackCopy count stacks sent as a site Go
	// knew (a hash), as a site's pcs sent once, and as registers with a
	// copy of the stack (a frame had no rule yet, or Config.NoStackSites).
	StackSite, StackNew, StackCopy uint64
	// FileRules counts unwind rules a process image got from its file's,
	// taught from another process's stack (no copy needed).
	FileRules uint64
	// StackMemo counts the StackSite stacks found from a memo of the same
	// walk (the frame and the stack words it read unchanged), not walked.
	StackMemo uint64
	// PyStacks counts Python stacks walked in the kernel; PyThreadKnown,
	// those whose thread state was the task's last one, checked instead of
	// searched for in the interpreter's list.
	PyStacks, PyThreadKnown uint64
	// UnreadBytes is what was still in the ring buffer when ReadUntil's
	// drain had to end: records that were sent but never read.
	UnreadBytes uint64
}

// Lost is every event the kernel side could not deliver or follow.
func (c Counters) Lost() uint64 {
	return c.RingbufFull + c.InflightFull + c.TracedFull + c.RightsDropped + c.Compat
}

// Counters reads the kernel counters.
func (t *Tracer) Counters() (Counters, error) {
	c := Counters{UnreadBytes: t.unread.Load()}
	read := func(idx bpf.LeaktraceLtCounter) (uint64, error) {
		var per []uint64
		if err := t.maps.Counters.Lookup(uint32(idx), &per); err != nil {
			return 0, fmt.Errorf("reading counter %d: %w", idx, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		return sum, nil
	}
	var err error
	for _, f := range []struct {
		idx bpf.LeaktraceLtCounter
		dst *uint64
	}{
		{bpf.LeaktraceLtCounterLT_CNT_EVENTS, &c.Sent},
		{bpf.LeaktraceLtCounterLT_CNT_RINGBUF_FULL, &c.RingbufFull},
		{bpf.LeaktraceLtCounterLT_CNT_INFLIGHT_FULL, &c.InflightFull},
		{bpf.LeaktraceLtCounterLT_CNT_TRACED_FULL, &c.TracedFull},
		{bpf.LeaktraceLtCounterLT_CNT_MISSED_EXIT, &c.MissedExit},
		{bpf.LeaktraceLtCounterLT_CNT_RIGHTS_DROPPED, &c.RightsDropped},
		{bpf.LeaktraceLtCounterLT_CNT_PAIRED, &c.Paired},
		{bpf.LeaktraceLtCounterLT_CNT_COMPAT, &c.Compat},
		{bpf.LeaktraceLtCounterLT_CNT_EVENT_BYTES, &c.Bytes},
		{bpf.LeaktraceLtCounterLT_CNT_STACK_SITE, &c.StackSite},
		{bpf.LeaktraceLtCounterLT_CNT_STACK_NEW, &c.StackNew},
		{bpf.LeaktraceLtCounterLT_CNT_STACK_COPY, &c.StackCopy},
		{bpf.LeaktraceLtCounterLT_CNT_FILE_RULE, &c.FileRules},
		{bpf.LeaktraceLtCounterLT_CNT_STACK_MEMO, &c.StackMemo},
		{bpf.LeaktraceLtCounterLT_CNT_PY_STACKS, &c.PyStacks},
		{bpf.LeaktraceLtCounterLT_CNT_PY_THREAD_KNOWN, &c.PyThreadKnown},
	} {
		if *f.dst, err = read(f.idx); err != nil {
			return c, err
		}
	}
	return c, nil
}

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("tracer closed")

// ReadUntil calls fn with every record, in ring buffer order, until stop is
// closed and then the ring buffer is empty, or fn fails. Everything in the
// ring when stop is closed is read, however slowly fn goes (a slow machine
// may lag the kernel by seconds at a process's end, and its last closes are
// there); what arrives after it only until drainLimit, since a process that
// keeps producing never empties the ring. A drain cut short leaves its
// bytes in Counters.UnreadBytes. The record's bytes are only valid during
// the call.
func (t *Tracer) ReadUntil(stop <-chan struct{}, fn func(raw []byte) error) error {
	var rec ringbuf.Record
	var drainEnd, hardEnd time.Time
	owed := 0 // bytes in the ring at stop not read yet
	lastSweep := time.Now()
	for {
		if drainEnd.IsZero() {
			select {
			case <-stop:
				// What is still parked is open now: it goes in the ring
				// ahead of the drain.
				if err := t.sweep(true); err != nil {
					return err
				}
				now := time.Now()
				drainEnd, hardEnd = now.Add(drainLimit), now.Add(drainHardLimit)
				owed = t.rd.AvailableBytes()
			default:
			}
		}
		if t.sweepEvery > 0 && drainEnd.IsZero() && time.Since(lastSweep) >= t.sweepEvery {
			if err := t.sweep(false); err != nil {
				return err
			}
			lastSweep = time.Now()
		}
		if !drainEnd.IsZero() {
			if now := time.Now(); now.After(hardEnd) || owed <= 0 && now.After(drainEnd) {
				t.unread.Store(uint64(t.rd.AvailableBytes()))
				return nil
			}
			t.rd.SetDeadline(time.Now()) // return at once when empty
		} else if t.ring != nil {
			if err := t.waitReadable(t.pollFor()); err != nil {
				return err
			}
			t.rd.SetDeadline(time.Now())
		} else {
			t.rd.SetDeadline(time.Now().Add(t.pollFor()))
		}
		err := t.rd.ReadInto(&rec)
		switch {
		case err == nil:
			if err := fn(rec.RawSample); err != nil {
				return err
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			if !drainEnd.IsZero() {
				return nil
			}
		case errors.Is(err, os.ErrClosed), errors.Is(err, ringbuf.ErrClosed):
			return ErrClosed
		default:
			return fmt.Errorf("reading ring buffer: %w", err)
		}
	}
}

// ringRecordBytes is the ring-buffer space of a record of n bytes: an
// 8-byte header, rounded up to 8. (A discarded record is skipped unseen, so
// owed may stay above zero a little longer than needed; hardEnd bounds it.)
func ringRecordBytes(n int) int {
	return (n + 8 + 7) &^ 7
}

// sweep sends the parked records older than the pairing window, or all of
// them. They go through the ring buffer, after the records already in it:
// the kernel sends a parked record before anything that touches its fd.
func (t *Tracer) sweep(all bool) error {
	if t.sweepEvery == 0 || t.common.SweepParked == nil {
		return nil
	}
	mode := uint64(0)
	if all {
		mode = 1
	}
	if _, err := t.common.SweepParked.Run(&ebpf.RunOptions{Context: []uint64{mode}}); err != nil {
		return fmt.Errorf("sweeping parked records: %w", err)
	}
	return nil
}

// pollInterval bounds how long a record can wait in the ring: the kernel side
// wakes the reader only for a backlog or for records it needs at once.
const pollInterval = 20 * time.Millisecond

// pollFor is how long ReadUntil may block in one read: the poll interval,
// or less when a sweep falls due sooner.
func (t *Tracer) pollFor() time.Duration {
	if t.sweepEvery > 0 && t.sweepEvery < pollInterval {
		return t.sweepEvery
	}
	return pollInterval
}

// drainLimit bounds how long ReadUntil reads, after stop, what arrived
// after stop; drainHardLimit how long it reads what was there at stop.
const (
	drainLimit     = 500 * time.Millisecond
	drainHardLimit = 60 * time.Second
)

// Close detaches everything. It unblocks Read.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		if t.ring != nil {
			t.ring.Close() // wakes waitReadable
		}
		if t.rd != nil {
			t.rd.Close()
		}
		closePerfFDs(t.perfFDs)
		for _, l := range t.links {
			l.Close()
		}
		t.common.close()
		for _, p := range []*ebpf.Program{t.raw.SysEnter, t.raw.SysExit, t.tp.SysEnterTp, t.tp.SysExitTp} {
			if p != nil {
				p.Close()
			}
		}
		t.maps.Close()
	})
	return nil
}

// ExeIDOf identifies the executable at path for Filter.Exes.
func ExeIDOf(path string) (ExeID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ExeID{}, fmt.Errorf("executable %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ExeID{}, fmt.Errorf("executable %s: not a regular file", path)
	}
	dev := uint64(st.Dev) // int32 on some OSes: the package builds anywhere, runs on Linux
	return ExeID{Ino: uint64(st.Ino), Dev: unix.Major(dev)<<20 | unix.Minor(dev)}, nil
}

// pidMax is the kernel's pid_max (the pid filter's size); the largest it
// can be when it cannot be read.
func pidMax() uint32 {
	const limit = 4 << 20 // PID_MAX_LIMIT on 64-bit
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return limit
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || n == 0 || n > limit {
		return limit
	}
	return uint32(n)
}
