//go:build linux && amd64

package symbolize

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

// capture is what the BPF side sees at a syscall: registers, a copy of the top of
// the stack, the kernel's frame-pointer walk, and the process's mappings.
type capture struct {
	regs     Regs
	stack    []byte
	kernelFP []uint64
	maps     []Mapping
}

const (
	ptraceOExitKill = 0x100000 // PTRACE_O_EXITKILL: the tracee dies with the test
	stackCopySize   = 8 << 10
	enosys          = 38
)

// traceSyscall runs argv under ptrace and captures the first syscall entry that
// match accepts, then kills the program. It follows every thread: Go programs make
// syscalls on whichever thread runs the goroutine.
func traceSyscall(t testing.TB, argv []string, match func(pid int, r *syscall.PtraceRegs) bool) capture {
	t.Helper()
	runtime.LockOSThread() // every ptrace request must come from the tracing thread
	defer runtime.UnlockOSThread()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		// Reap the leader and every traced thread.
		for {
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(-1, &ws, syscall.WALL, nil); err != nil {
				break
			}
		}
	}()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
		t.Fatal(err)
	}
	if err := syscall.PtraceSetOptions(pid, syscall.PTRACE_O_TRACESYSGOOD|syscall.PTRACE_O_TRACECLONE|ptraceOExitKill); err != nil {
		t.Fatal(err)
	}
	if err := syscall.PtraceSyscall(pid, 0); err != nil {
		t.Fatal(err)
	}
	for {
		tid, err := syscall.Wait4(-1, &ws, syscall.WALL, nil)
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		if ws.Exited() || ws.Signaled() {
			if tid == pid {
				t.Fatalf("%s ended before the syscall: %v", argv[0], ws)
			}
			continue
		}
		if !ws.Stopped() {
			continue
		}
		sig := 0
		switch s := ws.StopSignal(); s {
		case syscall.SIGTRAP | 0x80:
			var r syscall.PtraceRegs
			if err := syscall.PtraceGetRegs(tid, &r); err != nil {
				t.Fatal(err)
			}
			// At syscall entry the kernel has set rax to -ENOSYS.
			if int64(r.Rax) == -enosys && match(tid, &r) {
				return captureAt(t, pid, tid, &r)
			}
		case syscall.SIGTRAP, syscall.SIGSTOP:
			// Clone and exec events, and new threads' first stop.
		default:
			sig = int(s) // e.g. SIGURG, Go's preemption signal
		}
		if err := syscall.PtraceSyscall(tid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Fatal(err)
		}
	}
}

func captureAt(t testing.TB, pid, tid int, r *syscall.PtraceRegs) capture {
	t.Helper()
	c := capture{regs: Regs{IP: r.Rip, SP: r.Rsp, BP: r.Rbp}}
	// Copy up to stackCopySize bytes, page by page, stopping at the end of the
	// mapping as a bounded probe read would.
	for addr := r.Rsp; len(c.stack) < stackCopySize; {
		n := min(int(pageDown(addr)+pageSize-addr), stackCopySize-len(c.stack))
		buf := make([]byte, n)
		if _, err := syscall.PtracePeekData(tid, uintptr(addr), buf); err != nil {
			break
		}
		c.stack = append(c.stack, buf...)
		addr += uint64(n)
	}
	// The kernel's user frame-pointer walk (perf_callchain_user): ip, then follow bp.
	c.kernelFP = append(c.kernelFP, r.Rip)
	for fp := r.Rbp; len(c.kernelFP) < 127 && fp != 0; {
		var frame [16]byte
		if _, err := syscall.PtracePeekData(tid, uintptr(fp), frame[:]); err != nil {
			break
		}
		c.kernelFP = append(c.kernelFP, le64(frame[8:]))
		fp = le64(frame[:8])
	}
	maps, err := ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	c.maps = maps
	return c
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// peekString reads a NUL-terminated string from the tracee.
func peekString(pid int, addr uint64) string {
	var out []byte
	for len(out) < 4096 {
		var w [8]byte
		if _, err := syscall.PtracePeekData(pid, uintptr(addr), w[:]); err != nil {
			break
		}
		for _, b := range w {
			if b == 0 {
				return string(out)
			}
			out = append(out, b)
		}
		addr += 8
	}
	return string(out)
}

// openatOf matches the openat of path.
func openatOf(path string) func(int, *syscall.PtraceRegs) bool {
	return func(pid int, r *syscall.PtraceRegs) bool {
		return r.Orig_rax == syscall.SYS_OPENAT && peekString(pid, r.Rsi) == path
	}
}

func syscallNr(nr uint64) func(int, *syscall.PtraceRegs) bool {
	return func(_ int, r *syscall.PtraceRegs) bool { return r.Orig_rax == nr }
}

// markerFile makes an empty file whose path identifies the test's own open.
func markerFile(t testing.TB) string {
	t.Helper()
	p := t.TempDir() + "/leaktrace-marker"
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
