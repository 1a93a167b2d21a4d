package tracer

import (
	"testing"

	"github.com/leaktrace/leaktrace/bpf"
)

// TestSyscallHooks: the kernel side does close wholly at its enter and
// returns at once from any close exit (bpf/leaktrace.bpf.c on_sys_exit), so
// only close may go without an exit hook, and it needs its enter hook.
func TestSyscallHooks(t *testing.T) {
	sawClose := false
	for _, s := range Syscalls {
		isClose := s.Class == bpf.LeaktraceLtSysClassLT_SYS_CLOSE
		sawClose = sawClose || isClose
		if s.AtEnter != isClose {
			t.Errorf("%s: AtEnter %v, want %v (only close is done at its enter)", s.Name, s.AtEnter, isClose)
		}
		if s.AtEnter && !s.Enter {
			t.Errorf("%s: done at its enter but without its enter hook", s.Name)
		}
	}
	if !sawClose {
		t.Error("close is not in the syscall table")
	}
}
