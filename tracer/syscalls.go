//go:build linux

package tracer

import (
	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/event"
)

// Syscall describes one followed syscall, once: the kernel side reads it
// from sys_table (filled at load) and the decoder from Syscalls. Numbers are
// x86-64's; 32-bit (compat) syscalls are counted and not followed.
type Syscall struct {
	Nr    int
	Name  string
	Class bpf.LeaktraceLtSysClass
	// Path is the index of the path argument, when PathArg.
	Path    uint8
	PathArg bool
	// DPath names a file from its dentries when no absolute path did.
	DPath bool
	// Cloexec is the index of the flags argument whose CloexecMask bit asks
	// for a close-on-exec fd; NoArg when none. CloexecHow: the argument
	// points to a struct open_how. CloexecAlways: always close-on-exec.
	Cloexec       uint8
	CloexecMask   uint32
	CloexecHow    bool
	CloexecAlways bool
	// Pair is the index of the int[2] a PAIR syscall writes.
	Pair uint8
	// Kind is what the fd is when the kernel's description cannot tell.
	Kind event.Kind
	// Enter: the syscall needs its enter hook even where the others read
	// their arguments at exit (per-syscall hooks): a release's enter time
	// orders it against a racing open of the same fd, exit_group never
	// returns, and brk's enter parks the break it moves from.
	Enter bool
	// AtEnter: the enter hook does all of it and the syscall has no exit
	// hook (close: bpf/fdops.h close_enter).
	AtEnter bool
}

// NoArg marks an absent argument index.
const NoArg = 0xff

const (
	oCloexec = unix.O_CLOEXEC
)

func sysOpen(nr int, name string, path, cloexec uint8, mask uint32) Syscall {
	return Syscall{Nr: nr, Name: name, Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN, Path: path, PathArg: path != NoArg, DPath: true, Cloexec: cloexec, CloexecMask: mask}
}

func sysNew(nr int, name string, cloexec uint8, mask uint32) Syscall {
	return Syscall{Nr: nr, Name: name, Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN, Cloexec: cloexec, CloexecMask: mask}
}

func sysClass(nr int, name string, c bpf.LeaktraceLtSysClass) Syscall {
	return Syscall{Nr: nr, Name: name, Class: c, Cloexec: NoArg}
}

// Syscalls is every followed syscall.
var Syscalls = func() []Syscall {
	s := []Syscall{
		sysOpen(unix.SYS_OPEN, "open", 0, 1, oCloexec),
		sysOpen(unix.SYS_CREAT, "creat", 0, NoArg, 0),
		sysOpen(unix.SYS_OPENAT, "openat", 1, 2, oCloexec),
		sysOpen(unix.SYS_OPEN_BY_HANDLE_AT, "open_by_handle_at", NoArg, 2, oCloexec),
		sysNew(unix.SYS_SOCKET, "socket", 1, unix.SOCK_CLOEXEC),
		sysNew(unix.SYS_ACCEPT, "accept", NoArg, 0),
		sysNew(unix.SYS_ACCEPT4, "accept4", 3, unix.SOCK_CLOEXEC),
		sysNew(unix.SYS_EVENTFD, "eventfd", NoArg, 0),
		sysNew(unix.SYS_EVENTFD2, "eventfd2", 1, unix.EFD_CLOEXEC),
		sysNew(unix.SYS_EPOLL_CREATE, "epoll_create", NoArg, 0),
		sysNew(unix.SYS_EPOLL_CREATE1, "epoll_create1", 0, unix.EPOLL_CLOEXEC),
		sysNew(unix.SYS_INOTIFY_INIT, "inotify_init", NoArg, 0),
		sysNew(unix.SYS_INOTIFY_INIT1, "inotify_init1", 0, unix.IN_CLOEXEC),
		sysNew(unix.SYS_TIMERFD_CREATE, "timerfd_create", 1, unix.TFD_CLOEXEC),
		sysNew(unix.SYS_MEMFD_SECRET, "memfd_secret", 0, oCloexec),
		sysNew(unix.SYS_USERFAULTFD, "userfaultfd", 0, oCloexec),
		sysNew(unix.SYS_PERF_EVENT_OPEN, "perf_event_open", 4, unix.PERF_FLAG_FD_CLOEXEC),
		sysNew(unix.SYS_FANOTIFY_INIT, "fanotify_init", 0, unix.FAN_CLOEXEC),
		sysNew(unix.SYS_OPEN_TREE, "open_tree", 2, unix.OPEN_TREE_CLOEXEC),
		sysNew(unix.SYS_FSOPEN, "fsopen", 1, unix.FSOPEN_CLOEXEC),
		sysNew(unix.SYS_FSMOUNT, "fsmount", 1, unix.FSMOUNT_CLOEXEC),
		sysNew(unix.SYS_FSPICK, "fspick", 2, unix.FSPICK_CLOEXEC),
		{Nr: unix.SYS_MEMFD_CREATE, Name: "memfd_create", Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN, Cloexec: 1, CloexecMask: unix.MFD_CLOEXEC, Kind: event.KindMemfd},
		{Nr: unix.SYS_OPENAT2, Name: "openat2", Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN, Path: 1, PathArg: true, DPath: true, Cloexec: 2, CloexecMask: oCloexec, CloexecHow: true},
		{Nr: unix.SYS_IO_URING_SETUP, Name: "io_uring_setup", Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN, Cloexec: NoArg, CloexecAlways: true, Kind: event.KindIOUring},
		{Nr: unix.SYS_PIDFD_OPEN, Name: "pidfd_open", Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN, Cloexec: NoArg, CloexecAlways: true, Kind: event.KindPidfd},
		{Nr: unix.SYS_PIDFD_GETFD, Name: "pidfd_getfd", Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN, Cloexec: NoArg, CloexecAlways: true},
		{Nr: unix.SYS_SIGNALFD, Name: "signalfd", Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN_OR_SAME, Cloexec: NoArg},
		{Nr: unix.SYS_SIGNALFD4, Name: "signalfd4", Class: bpf.LeaktraceLtSysClassLT_SYS_OPEN_OR_SAME, Cloexec: 3, CloexecMask: unix.SFD_CLOEXEC},
		{Nr: unix.SYS_PIPE, Name: "pipe", Class: bpf.LeaktraceLtSysClassLT_SYS_PAIR, Pair: 0, Cloexec: NoArg},
		{Nr: unix.SYS_PIPE2, Name: "pipe2", Class: bpf.LeaktraceLtSysClassLT_SYS_PAIR, Pair: 0, Cloexec: 1, CloexecMask: oCloexec},
		{Nr: unix.SYS_SOCKETPAIR, Name: "socketpair", Class: bpf.LeaktraceLtSysClassLT_SYS_PAIR, Pair: 3, Cloexec: 1, CloexecMask: unix.SOCK_CLOEXEC},
		sysClass(unix.SYS_DUP, "dup", bpf.LeaktraceLtSysClassLT_SYS_DUP),
		{Nr: unix.SYS_DUP2, Name: "dup2", Class: bpf.LeaktraceLtSysClassLT_SYS_DUP_ONTO, Cloexec: NoArg, Enter: true},
		{Nr: unix.SYS_DUP3, Name: "dup3", Class: bpf.LeaktraceLtSysClassLT_SYS_DUP_ONTO, Cloexec: 2, CloexecMask: oCloexec, Enter: true},
		sysClass(unix.SYS_FCNTL, "fcntl", bpf.LeaktraceLtSysClassLT_SYS_FCNTL),
		{Nr: unix.SYS_CLOSE, Name: "close", Class: bpf.LeaktraceLtSysClassLT_SYS_CLOSE, Cloexec: NoArg, Enter: true, AtEnter: true},
		{Nr: unix.SYS_CLOSE_RANGE, Name: "close_range", Class: bpf.LeaktraceLtSysClassLT_SYS_CLOSE_RANGE, Cloexec: NoArg, Enter: true},
		sysClass(unix.SYS_CONNECT, "connect", bpf.LeaktraceLtSysClassLT_SYS_SOCK_ADDR),
		sysClass(unix.SYS_BIND, "bind", bpf.LeaktraceLtSysClassLT_SYS_SOCK_ADDR),
		sysClass(unix.SYS_LISTEN, "listen", bpf.LeaktraceLtSysClassLT_SYS_SOCK_ADDR),
		sysClass(unix.SYS_RECVMSG, "recvmsg", bpf.LeaktraceLtSysClassLT_SYS_RECVMSG),
		sysClass(unix.SYS_RECVMMSG, "recvmmsg", bpf.LeaktraceLtSysClassLT_SYS_RECVMMSG),
		sysClass(unix.SYS_MMAP, "mmap", bpf.LeaktraceLtSysClassLT_SYS_MMAP),
		// munmap's enter time: a waiting mmap pairs with it only when made before it began.
		{Nr: unix.SYS_MUNMAP, Name: "munmap", Class: bpf.LeaktraceLtSysClassLT_SYS_MUNMAP, Cloexec: NoArg, Enter: true},
		sysClass(unix.SYS_MREMAP, "mremap", bpf.LeaktraceLtSysClassLT_SYS_MREMAP),
		{Nr: unix.SYS_BRK, Name: "brk", Class: bpf.LeaktraceLtSysClassLT_SYS_BRK, Cloexec: NoArg, Enter: true},
		sysClass(unix.SYS_MPROTECT, "mprotect", bpf.LeaktraceLtSysClassLT_SYS_MPROTECT),
		sysClass(unix.SYS_PKEY_MPROTECT, "pkey_mprotect", bpf.LeaktraceLtSysClassLT_SYS_MPROTECT),
		sysClass(unix.SYS_WAIT4, "wait4", bpf.LeaktraceLtSysClassLT_SYS_WAIT4),
		sysClass(unix.SYS_WAITID, "waitid", bpf.LeaktraceLtSysClassLT_SYS_WAITID),
		{Nr: unix.SYS_EXIT_GROUP, Name: "exit_group", Class: bpf.LeaktraceLtSysClassLT_SYS_EXIT_GROUP, Cloexec: NoArg, Enter: true},
	}
	return s
}()

// syscallByNr indexes Syscalls by number.
var syscallByNr = func() map[uint16]*Syscall {
	m := make(map[uint16]*Syscall, len(Syscalls))
	for i := range Syscalls {
		m[uint16(Syscalls[i].Nr)] = &Syscalls[i]
	}
	return m
}()

// lookupSyscall is the row of nr, or nil when nr is not followed.
func lookupSyscall(nr uint16) *Syscall { return syscallByNr[nr] }

// row is s as the kernel reads it.
func (s *Syscall) row() bpf.LeaktraceLtSys {
	r := bpf.LeaktraceLtSys{
		Class:       uint8(s.Class),
		PathArg:     s.Path,
		CloexecArg:  s.Cloexec,
		CloexecMask: s.CloexecMask,
		PairArg:     s.Pair,
	}
	if s.PathArg {
		r.Flags |= uint8(bpf.LeaktraceLtSysFlagLT_SYSF_PATH)
	}
	if s.DPath {
		r.Flags |= uint8(bpf.LeaktraceLtSysFlagLT_SYSF_DPATH)
	}
	if s.CloexecHow {
		r.Flags |= uint8(bpf.LeaktraceLtSysFlagLT_SYSF_CLOEXEC_HOW)
	}
	if s.CloexecAlways {
		r.Flags |= uint8(bpf.LeaktraceLtSysFlagLT_SYSF_CLOEXEC_ALWAYS)
	}
	if s.Enter {
		r.Flags |= uint8(bpf.LeaktraceLtSysFlagLT_SYSF_ENTER)
	}
	return r
}

// install is how an FD_OPEN record of syscall nr put its fds in the table.
func install(nr uint16, received bool) event.Install {
	if received {
		return event.InstallReceived
	}
	s := lookupSyscall(nr)
	if s == nil {
		return event.InstallNew
	}
	switch s.Class {
	case bpf.LeaktraceLtSysClassLT_SYS_PAIR:
		return event.InstallPair
	case bpf.LeaktraceLtSysClassLT_SYS_DUP, bpf.LeaktraceLtSysClassLT_SYS_FCNTL:
		return event.InstallDup
	case bpf.LeaktraceLtSysClassLT_SYS_DUP_ONTO:
		return event.InstallDupOnto
	}
	return event.InstallNew
}
