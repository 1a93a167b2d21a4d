//go:build linux

package tracer

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Hooks is how syscalls are hooked.
type Hooks int

const (
	// HooksRaw: the raw sys_enter/sys_exit tracepoints, one program run per
	// syscall of every process on the host. Attaching and detaching are
	// instant; run uses them.
	HooksRaw Hooks = iota
	// HooksPerSyscall: each followed syscall's own tracepoint, so syscalls
	// nobody follows run no program. Detaching takes a grace period per
	// tracepoint (seconds in all); the agent uses them. Falls back to
	// HooksRaw when the syscall tracepoints cannot be found.
	HooksPerSyscall
)

// commonPrograms are attached in every mode.
type commonPrograms struct {
	SchedProcessExec *ebpf.Program `ebpf:"sched_process_exec"`
	SchedProcessExit *ebpf.Program `ebpf:"sched_process_exit"`
	SchedProcessFork *ebpf.Program `ebpf:"sched_process_fork"`
	// SweepParked sends the records parked longer than the pairing window
	// (bpf/pair.h). Never attached: Read runs it every half window.
	SweepParked *ebpf.Program `ebpf:"sweep_parked"`
}

type rawPrograms struct {
	SysEnter *ebpf.Program `ebpf:"sys_enter"`
	SysExit  *ebpf.Program `ebpf:"sys_exit"`
}

type perSyscallPrograms struct {
	SysEnterTp *ebpf.Program `ebpf:"sys_enter_tp"`
	SysExitTp  *ebpf.Program `ebpf:"sys_exit_tp"`
}

func (p *commonPrograms) close() {
	for _, q := range []*ebpf.Program{p.SchedProcessExec, p.SchedProcessExit, p.SchedProcessFork, p.SweepParked} {
		if q != nil {
			q.Close()
		}
	}
}

// attachTracing attaches tp_btf programs.
func (t *Tracer) attachTracing(progs ...*ebpf.Program) error {
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			return fmt.Errorf("attaching %s: %w", p, err)
		}
		t.links = append(t.links, l)
	}
	return nil
}

// attachPerSyscall attaches enter and exit to every followed syscall's own
// tracepoints through perf events.
func (t *Tracer) attachPerSyscall(enter, exit *ebpf.Program, ids map[string]uint64) error {
	for i := range Syscalls {
		for _, h := range []struct {
			prefix string
			prog   *ebpf.Program
		}{{"sys_enter_", enter}, {"sys_exit_", exit}} {
			if h.prog == enter && !Syscalls[i].Enter {
				continue // its exit reads the arguments (bpf/leaktrace.bpf.c)
			}
			if h.prog == exit && Syscalls[i].AtEnter {
				continue // its enter does all of it
			}
			id, ok := ids[h.prefix+Syscalls[i].Name]
			if !ok {
				// Not built into this kernel (memfd_secret, …): nothing can
				// make that syscall succeed here either.
				slog.Debug("no tracepoint for syscall", "tracepoint", h.prefix+Syscalls[i].Name)
				continue
			}
			fd, err := attachTracepointID(id, h.prog)
			if err != nil {
				return fmt.Errorf("attaching %s%s: %w", h.prefix, Syscalls[i].Name, err)
			}
			t.perfFDs = append(t.perfFDs, fd)
		}
	}
	return nil
}

// attachTracepointID opens a perf event on tracepoint id and runs prog on it.
// Closing the returned fd detaches it.
func attachTracepointID(id uint64, prog *ebpf.Program) (int, error) {
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: id}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("perf_event_open: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, prog.FD()); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("setting the program: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("enabling: %w", err)
	}
	return fd, nil
}

// closePerfFDs detaches the per-syscall hooks. Each costs the kernel a grace
// period under a mutex; disabling them all first stops their cost at once.
func closePerfFDs(fds []int) {
	for _, fd := range fds {
		unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0)
	}
	var wg sync.WaitGroup
	for _, fd := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unix.Close(fd)
		}()
	}
	wg.Wait()
}

// syscallTracepointIDs reads the ids of every syscalls/sys_{enter,exit}_*
// tracepoint from tracefs. When tracefs is not mounted (a fresh machine), it
// is mounted for a moment in a private mount namespace of one thread, so the
// host's mounts never change.
func syscallTracepointIDs() (map[string]uint64, error) {
	for _, dir := range tracefsMounts() {
		if ids, err := readSyscallIDs(dir); err == nil {
			return ids, nil
		}
	}
	type result struct {
		ids map[string]uint64
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: it leaves with its private
		// namespace when this goroutine ends.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			ch <- result{err: fmt.Errorf("unsharing the mount namespace: %w", err)}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ch <- result{err: fmt.Errorf("making mounts private: %w", err)}
			return
		}
		dir, err := os.MkdirTemp("", "leaktrace-tracefs-")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer os.Remove(dir)
		if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
			ch <- result{err: fmt.Errorf("mounting tracefs: %w", err)}
			return
		}
		defer unix.Unmount(dir, unix.MNT_DETACH)
		ids, err := readSyscallIDs(dir)
		ch <- result{ids, err}
	}()
	r := <-ch
	return r.ids, r.err
}

// tracefsMounts lists where tracefs is mounted, from /proc/self/mountinfo.
func tracefsMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && i >= 5 {
				if fields[i+1] == "tracefs" {
					out = append(out, fields[4])
				}
				break
			}
		}
	}
	return out
}

var errNoSyscallEvents = errors.New("no syscall tracepoints (kernel built without CONFIG_FTRACE_SYSCALLS?)")

func readSyscallIDs(tracefs string) (map[string]uint64, error) {
	dir := filepath.Join(tracefs, "events", "syscalls")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, errNoSyscallEvents
	}
	ids := make(map[string]uint64, len(ents))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "id"))
		if err != nil {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			continue
		}
		ids[e.Name()] = id
	}
	if len(ids) == 0 {
		return nil, errNoSyscallEvents
	}
	return ids, nil
}
