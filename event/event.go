// Package event defines the typed events that flow from the tracer to the
// aggregator. It knows nothing of BPF: the aggregator and its tests build
// these by hand.
package event

import "fmt"

// Type is what happened.
type Type uint8

const (
	FDOpen     Type = iota + 1 // FD (and FD2 for pipe/socketpair) installed
	FDClose                    // FD released
	CloseRange                 // [FD, FD2] released, or only marked close-on-exec
	TaskNew                    // a thread or process was created by TID
	Exec                       // PID replaced its image; OpenFDs is its table now
	TaskExit                   // thread TID exited; GroupDead when PID is gone
	Mmap                       // an executable file mapping (symbolization only)
	ExitGroup                  // PID began to exit: its other threads still run now
	Reap                       // ChildPID was reaped by PID (wait4, waitid)
	FDUpdate                   // FD's target changed (a socket bound or connected)
	PyStack                    // Python frames of TID's next FDOpen or TaskNew (session only)
	FDFail                     // an fd-creating syscall failed: Errno is EMFILE or ENFILE
	PyCode                     // a Python code object's names, read by the kernel (session only)
	MapNew                     // [Addr, Addr+Len) mapped by PID (mmap, brk growth)
	MapFree                    // [Addr, Addr+Len) unmapped (munmap, brk shrinking)
	MapMove                    // mremap: [OldAddr, OldAddr+OldLen) became [Addr, Addr+Len)
	MapProt                    // mprotect: [Addr, Addr+Len) accessible now, or reserved (FlagMapReserved)
	FileID                     // the kernel's name for the file at a stack copy's first pc (session only)
)

var typeNames = [...]string{"", "fd_open", "fd_close", "close_range", "task_new", "exec", "task_exit", "mmap", "exit_group", "reap", "fd_update", "py_stack", "fd_fail", "py_code", "map_new", "map_free", "map_move", "map_prot", "file_id"}

func (t Type) String() string {
	if int(t) < len(typeNames) && t > 0 {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", t)
}

// Kind is the kind of a handle.
type Kind uint8

const (
	KindUnknown Kind = iota
	KindFile
	KindDir
	KindSocket
	KindPipe
	KindEventfd
	KindEpoll
	KindMemfd
	KindTimerfd
	KindSignalfd
	KindInotify
	KindFanotify
	KindPidfd
	KindIOUring
	KindAnon
	KindThread
	KindProcess
	KindMapping // a memory mapping (mmap, brk): not an fd, counted in bytes
	kindCount
)

var kindNames = [...]string{"unknown", "file", "dir", "socket", "pipe", "eventfd", "epoll", "memfd",
	"timerfd", "signalfd", "inotify", "fanotify", "pidfd", "io_uring", "anon", "thread", "process", "mapping"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Kinds lists every kind, for flags and docs.
func Kinds() []Kind {
	ks := make([]Kind, 0, kindCount)
	for k := KindFile; k < kindCount; k++ {
		ks = append(ks, k)
	}
	return ks
}

// Install is how an FDOpen put its fds in the table: the decoder derives it
// from the syscall, so nothing past it needs syscall numbers.
type Install uint8

const (
	InstallNew      Install = iota // FD is a new fd
	InstallPair                    // FD and FD2 are new (pipe, socketpair)
	InstallDup                     // FD is a new copy of FD2 (dup, F_DUPFD)
	InstallDupOnto                 // FD became a copy of FD2, closing what FD held (dup2, dup3)
	InstallReceived                // FD arrived through SCM_RIGHTS
)

// StackID names an interned user stack; 0 is "no stack".
type StackID uint32

// Flags of an fd event.
const (
	FlagCloexec     uint32 = 1 << 0
	FlagUnshare     uint32 = 1 << 3 // close_range CLOSE_RANGE_UNSHARE
	FlagOnlyCloexec uint32 = 1 << 4 // close_range CLOSE_RANGE_CLOEXEC: nothing closed yet
	FlagReceived    uint32 = 1 << 5 // installed by recvmsg from SCM_RIGHTS
	// FlagChecked: Enter is unknown (the agent's hooks read a creating
	// syscall's arguments at its exit); the fd was seen installed when the
	// syscall returned (Time). FlagGone: it was not, another thread had
	// closed it already.
	FlagChecked uint32 = 1 << 8
	FlagGone    uint32 = 1 << 9
	// FlagPyShutdown: closed while the Python interpreter was finalizing; the
	// program still held the handle when it ended.
	FlagPyShutdown uint32 = 1 << 16
	// FlagPyFinalizing: created once the Python interpreter had begun to
	// finalize (exit-time code's own handle: its close then is no leak).
	// Set from the Python stack sent with the record, not by the kernel's
	// fd record itself.
	FlagPyFinalizing uint32 = 1 << 17
	// Flags of mapping events (LT_MAP_* in bpf/leaktrace.h).
	FlagMapBrk       uint32 = 1 << 0 // the program break moved, not mmap
	FlagMapFile      uint32 = 1 << 1 // a file mapping
	FlagMapShared    uint32 = 1 << 2 // MAP_SHARED
	FlagMapDontUnmap uint32 = 1 << 3 // mremap MREMAP_DONTUNMAP: the old range stays
	// FlagMapReserved: mapped or protected PROT_NONE, address space
	// reserved, not memory (set by the decoder from the record's prot).
	FlagMapReserved uint32 = 1 << 8
)

// Event is one decoded kernel event. Fields not meaningful for a Type are zero.
type Event struct {
	Type Type
	Time uint64 // ns since boot (CLOCK_MONOTONIC)
	// Enter is when the fd syscall was entered (Time is its exit): the
	// aggregator orders releases against racing opens of the same fd with it.
	Enter uint64
	// File is the kernel's address of the file at FD when the record was
	// made (0: none): a close and the creation it races with agree on it.
	File    uint64
	PID     uint32 // thread group id
	TID     uint32
	Files   uint64 // identity of the fd table the event touched (kernel address)
	Syscall uint16 // x86-64 number, for display; meaning is in Install and Type
	Comm    string
	Install Install // FDOpen

	FD, FD2 int32
	Flags   uint32
	Kind    Kind
	Target  string // path, address or description of FD
	Target2 string
	Stack   StackID
	Errno   int32 // FDFail: EMFILE (24) or ENFILE (23)

	// TaskNew: the new task. TaskExit: the exiting one in PID/TID.
	ChildPID, ChildTID uint32
	ChildFiles         uint64
	IsThread           bool
	GroupDead          bool
	ExitCode           int32 // wait status as the kernel keeps it
	PPID               uint32
	Autoreap           bool // TaskExit: the parent ignores SIGCHLD, no zombie is left

	// Exec: open fds after close-on-exec ones were closed. OpenFDsComplete is
	// false when the table is larger than what the kernel sent.
	OpenFDs         []uint64
	OpenFDsComplete bool
	Exe             string

	// MapNew, MapFree, MapMove: the range, as the syscall gave it (the
	// aggregator rounds to pages). Target names a file mapping's file,
	// "[heap]" for brk, "[anon]" otherwise.
	Addr, Len       uint64
	OldAddr, OldLen uint64
}

// FDOpenAfterExec reports whether fd was open after the exec (bit set).
func (e *Event) FDOpenAfterExec(fd int32) bool {
	w := int(fd) / 64
	if fd < 0 || w >= len(e.OpenFDs) {
		return false
	}
	return e.OpenFDs[w]&(1<<(uint(fd)%64)) != 0
}
