package event

// x86-64 syscall numbers that events carry in Syscall and that change what an
// event means (the tracer's decoder and the aggregator both ask).
const (
	SysOpen       = 2
	SysPipe       = 22
	SysDup        = 32
	SysDup2       = 33
	SysSocketpair = 53
	SysFcntl      = 72
	SysCreat      = 85
	SysOpenat     = 257
	SysDup3       = 292
	SysPipe2      = 293
	SysMemfd      = 319
	SysOpenat2    = 437
)

// IsPair reports whether syscall nr installs two fds (FD and FD2).
func IsPair(nr uint16) bool { return nr == SysPipe || nr == SysPipe2 || nr == SysSocketpair }
