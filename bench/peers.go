//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// straceArgs trace what leaktrace needs to know (fd-creating and -closing
// syscalls, process lifecycle) with strace's fastest setup: a seccomp filter
// stops only on those, and the output goes nowhere.
var straceArgs = []string{"strace", "-f", "-qq", "-o", "/dev/null", "--seccomp-bpf", "-e", "trace=%desc,%net,%process"}

// bpftraceScript keeps, as a bpftrace user would, a table of the workload's
// open fds keyed by (tid, fd) holding the user stack that created each: the
// opens and socketpairs the workloads make enter it, closes leave it.
const bpftraceScript = `tracepoint:syscalls:sys_exit_openat /pid == cpid && args->ret >= 0/ { @open[tid, args->ret] = ustack; }
tracepoint:syscalls:sys_enter_socketpair /pid == cpid/ { @sv[tid] = args->usockvec; }
tracepoint:syscalls:sys_exit_socketpair /@sv[tid] != 0/ {
	if (args->ret == 0) {
		$fd0 = *(int32 *)uptr(@sv[tid]);
		$fd1 = *(int32 *)uptr(@sv[tid] + 4);
		@open[tid, $fd0] = ustack;
		@open[tid, $fd1] = ustack;
	}
	delete(@sv[tid]);
}
tracepoint:syscalls:sys_enter_close /pid == cpid/ { delete(@open[tid, args->fd]); }
END { clear(@open); clear(@sv); }
`

const tracefs = "/sys/kernel/tracing"

// peers finds (or, with -install-peers, installs) strace and bpftrace and
// returns the ones that can run, with the reason for each that cannot.
func (b *bench) peers() (map[string]tracerCmd, map[string]string) {
	ok := map[string]tracerCmd{}
	why := map[string]string{}
	var missing []string
	for _, p := range []string{"strace", "bpftrace"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 && b.cfg.installPeers {
		logf("installing %s with apt-get", strings.Join(missing, ", "))
		cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			logf("apt-get install %s: %v", strings.Join(missing, " "), err)
		}
	}

	if _, err := exec.LookPath("strace"); err != nil {
		why["strace"] = "strace is not installed (apt-get install -y strace, or make bench installs it)"
	} else {
		ok["strace"] = tracerCmd{"strace", func(cmd []string) []string {
			return append(append([]string{}, straceArgs...), cmd...)
		}}
	}

	if _, err := exec.LookPath("bpftrace"); err != nil {
		why["bpftrace"] = "bpftrace is not installed (apt-get install -y bpftrace, or make bench installs it)"
		return ok, why
	}
	if err := b.mountTracefs(); err != nil {
		why["bpftrace"] = err.Error()
		return ok, why
	}
	script := filepath.Join(b.dir, "fds.bt")
	if err := os.WriteFile(script, []byte(bpftraceScript), 0o644); err != nil {
		why["bpftrace"] = fmt.Sprintf("writing its script: %v", err)
		return ok, why
	}
	ok["bpftrace"] = tracerCmd{"bpftrace", func(cmd []string) []string {
		// -c splits on spaces; the temp dir's paths have none.
		return []string{"bpftrace", "-q", script, "-c", strings.Join(cmd, " ")}
	}}
	return ok, why
}

// mountTracefs mounts tracefs when it is not: bpftrace 0.17 finds syscall
// tracepoints there and does not mount it itself. close unmounts it again.
func (b *bench) mountTracefs() error {
	if _, err := os.Stat(filepath.Join(tracefs, "events", "syscalls")); err == nil {
		return nil
	}
	if err := mountTracefsAt(tracefs); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it at %s failed: %v", tracefs, err)
	}
	b.mountedTracefs = true
	if _, err := os.Stat(filepath.Join(tracefs, "events", "syscalls")); err != nil {
		return errors.New("this kernel has no syscall tracepoints in tracefs, which bpftrace needs")
	}
	return nil
}
