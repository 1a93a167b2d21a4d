//go:build linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/procfs"
	"github.com/leaktrace/leaktrace/session"
	"github.com/leaktrace/leaktrace/tracer"
)

type attachFlags struct {
	traceFlags
	duration time.Duration
	minAge   time.Duration
	interval time.Duration
}

func newAttachCmd() *cobra.Command {
	var f attachFlags
	cmd := &cobra.Command{
		Use:   "attach PID",
		Short: "Trace a live process and its future children; report handles outstanding past --min-age",
		Long: `Trace a running process until Ctrl-C, --duration, or its exit. Handles it opens
and keeps longer than --min-age are reported by the call stack that created them; sites
whose outstanding count grows come first. Handles already open at attach are listed
apart, without a stack. What a traced process held when it exited (a forking server's
workers) was released by the kernel: it is summed apart, never counted; handles younger
than --min-age are counted as not judged yet. On a terminal a live view refreshes every
--interval.`,
		Example: `  sudo leaktrace attach 4242
  sudo leaktrace attach --duration 5m --min-age 30s --json leaks.json 4242`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return attach(cmd.Context(), args[0], &f)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (0: until Ctrl-C or the process exits)")
	fl.DurationVar(&f.minAge, "min-age", 10*time.Second, "report handles outstanding at least this long")
	fl.DurationVar(&f.interval, "interval", time.Second, "live view refresh interval")
	return cmd
}

func attach(ctx context.Context, arg string, f *attachFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	pid, err := strconv.Atoi(arg)
	if err != nil || pid <= 0 {
		return &userError{code: exitUsage, msg: fmt.Sprintf("%q is not a pid (give the number of a running process, see ps)", arg)}
	}
	pid, st, err := attachTarget(pid)
	if err != nil {
		return err
	}
	if err := tracer.CheckPrivileges(); err != nil {
		return &userError{code: exitUsage, msg: err.Error()}
	}
	cfg := f.tracerConfig()
	sess, err := session.New(session.Options{Mode: aggregator.ModeAttach, MinAge: f.minAge, Tracer: cfg})
	if err != nil {
		return kernelError(err)
	}
	defer sess.Close()
	if err := sess.Add(pid); err != nil {
		return fmt.Errorf("attaching to pid %d: %w", pid, err)
	}
	// From here on nothing the target does is missed (tests wait for it).
	slog.Debug("tracing", "pid", pid, "ready_seconds", time.Since(sess.Started()).Seconds())

	if ctx == nil {
		ctx = context.Background()
	}
	// A closed terminal (SIGHUP) ends the session as Ctrl-C does: with the report.
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	if f.duration > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, f.duration)
		defer c2()
	}

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- sess.Run(stop) }()

	var screen *liveScreen
	if isTerminal(os.Stderr) {
		screen = openLiveScreen(os.Stderr, f.minAge)
	}
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-done:
			screen.close()
			return fmt.Errorf("reading events: %w", err)
		case <-tick.C:
			sess.SampleGrowth()
			// A zombie's fds are closed already; nothing more can happen.
			if st, err := procfs.ReadStat(pid); err != nil || st.Gone() {
				break loop
			}
			if screen != nil {
				screen.draw(sess, pid, st.Comm)
			}
		}
	}
	screen.close()
	close(stop)
	if err := <-done; err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	sess.SampleGrowth()
	r, err := sess.Report(session.ReportInfo{Mode: "attach", PID: pid, ExitCode: -1})
	if err != nil {
		return fmt.Errorf("building report: %w", err)
	}
	return writeReports(r, &f.traceFlags)
}

// attachTarget resolves what attach was given to a process it can trace: a
// thread id becomes its process (said on stderr), and kernel threads, zombies
// and leaktrace itself are refused.
func attachTarget(pid int) (int, procfs.Stat, error) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0, st, &userError{code: exitUsage, msg: fmt.Sprintf("no such pid %d (check it with ps)", pid)}
	}
	if st.KernelThread() {
		return 0, st, &userError{code: exitUsage, msg: fmt.Sprintf("pid %d (%s) is a kernel thread: it has no user space and no fds of its own to leak; give a user process's pid", pid, st.Comm)}
	}
	tgid, err := procfs.Tgid(pid)
	if err != nil {
		return 0, st, &userError{code: exitUsage, msg: fmt.Sprintf("no such pid %d (check it with ps)", pid)}
	}
	if tgid != pid {
		fmt.Fprintf(os.Stderr, "leaktrace: %d is a thread of process %d (%s): attaching to the process\n", pid, tgid, st.Comm)
		pid = tgid
		if st, err = procfs.ReadStat(pid); err != nil {
			return 0, st, &userError{code: exitUsage, msg: fmt.Sprintf("no such pid %d (check it with ps)", pid)}
		}
	}
	if st.Gone() {
		return 0, st, &userError{code: exitUsage, msg: fmt.Sprintf("pid %d (%s) has exited (a zombie its parent has not reaped): nothing is left to trace", pid, st.Comm)}
	}
	if pid == os.Getpid() {
		return 0, st, &userError{code: exitUsage, msg: "leaktrace cannot attach to itself"}
	}
	return pid, st, nil
}
