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
	"github.com/leaktrace/leaktrace/exporter"
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
	pid, err := strconv.Atoi(arg)
	if err != nil || pid <= 0 {
		return &userError{code: exitUsage, msg: fmt.Sprintf("%q is not a pid (give the number of a running process, see ps)", arg)}
	}
	if err := tracer.CheckPrivileges(); err != nil {
		return &userError{code: exitUsage, msg: err.Error()}
	}
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return &userError{code: exitUsage, msg: fmt.Sprintf("no such pid %d (check it with ps)", pid)}
	}
	if pid == os.Getpid() {
		return &userError{code: exitUsage, msg: "leaktrace cannot attach to itself"}
	}
	cfg := f.tracerConfig()
	// A handle closed before its thread's next syscall never leaves the
	// kernel; one held longer is sent at that syscall, long before --min-age.
	cfg.PairInKernel = true
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
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if f.duration > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, f.duration)
		defer c2()
	}

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- sess.Run(stop) }()

	live := isTerminal(os.Stderr)
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-done:
			return fmt.Errorf("reading events: %w", err)
		case <-tick.C:
			sess.SampleGrowth()
			if !procfs.Exists(pid) {
				break loop
			}
			if live {
				drawLive(sess, pid, st.Comm)
			}
		}
	}
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

func drawLive(sess *session.Session, pid int, comm string) {
	r, err := sess.Report(session.ReportInfo{Mode: "attach", PID: pid, ExitCode: -1})
	if err != nil {
		return
	}
	open := 0
	sess.With(func(a *aggregator.Aggregator) { open = len(a.Live(uint32(pid))) })
	w, h := terminalSize(os.Stderr)
	v := exporter.LiveView{
		PID: pid, Comm: comm, Elapsed: time.Since(sess.Started()), Received: r.Events.Received,
		Lost: r.Events.Lost, Open: open, Sites: r.Sites, Width: w, Height: h,
	}
	if r.HeldAtExit != nil {
		v.Held, v.HeldHandles = r.HeldAtExit.Sites, r.HeldAtExit.Handles
	}
	if r.YoungerThanMinAge != nil {
		v.Young = r.YoungerThanMinAge.Handles
	}
	exporter.WriteLive(os.Stderr, v)
}
