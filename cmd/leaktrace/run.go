//go:build linux

package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/session"
	"github.com/leaktrace/leaktrace/tracer"
)

// traceFlags are shared by run, attach and demo.
type traceFlags struct {
	jsonPath       string
	ringBufferSize int
	stackBytes     int
	pairWindow     time.Duration
	noStackSites   bool
	maxFrames      int
}

func (f *traceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.jsonPath, "json", "", "write the report as JSON to `FILE` (schema: docs/json-schema.md)")
	fl.IntVar(&f.ringBufferSize, "ring-buffer-size", tracer.DefaultRingBufferBytes, "kernel ring buffer size in `bytes` (a power of two)")
	fl.IntVar(&f.stackBytes, "stack-bytes", tracer.DefaultStackBytes, "bytes of user stack copied per event for unwinding (0-8192; 0 copies none)")
	fl.DurationVar(&f.pairWindow, "pair-window", tracer.DefaultPairWindow, pairWindowHelp)
	fl.BoolVar(&f.noStackSites, "no-stack-sites", false, noStackSitesHelp)
	fl.IntVar(&f.maxFrames, "max-frames", 16, "stack frames shown per site in the text report")
}

// pairWindowHelp describes --pair-window, which run, attach, demo and the
// agent share.
const pairWindowHelp = "how long a new handle's record may wait in the kernel for its close (closed sooner: neither record is sent); 0 sends every record"

// noStackSitesHelp describes --no-stack-sites, shared like pairWindowHelp.
const noStackSitesHelp = "never unwind in the kernel: send every stack as registers and a copy for leaktrace to unwind, and settle no handle in the kernel (slower; to compare)"

func (f *traceFlags) tracerConfig() tracer.Config {
	return tracer.Config{RingBufferBytes: f.ringBufferSize, StackBytes: stackBytes(f.stackBytes),
		PairInKernel: f.pairWindow > 0, PairWindow: f.pairWindow, NoStackSites: f.noStackSites}
}

type runFlags struct {
	traceFlags
	policyFlags
	outputFlags
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command traced and report the handles it leaked",
		Long: `Run CMD traced from its first instruction, follow its children, and when it exits
report every handle a traced process created and still held when it exited, grouped by
the call stack that created it. CMD's stdin, stdout, stderr, environment and exit code
pass through untouched; the report goes to stderr.

Exit codes: CMD's own non-zero code; else 99 when --budget is exceeded, 98 when a
budget was given but events were lost (the report is incomplete: raise
--ring-buffer-size, or judge it anyway with --allow-incomplete); 125 when leaktrace
itself fails (privileges, kernel, flags); 126 when CMD cannot be executed; 127 when
CMD is not found.`,
		Example: `  sudo leaktrace run -- ./server --selftest
  sudo leaktrace run --budget 0 --json leaks.json -- python3 -m pytest tests/
  sudo leaktrace run --budget 5,socket=0 --suppressions leaktrace.supp --baseline main.json \
      --sarif leaks.sarif --junit leaks.xml -- go test ./...`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTraced(cmd, args, &f)
		},
	}
	f.register(cmd)
	// Flags after CMD are CMD's: `run python3 -v app.py` must not give -v
	// to leaktrace.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func (f *runFlags) register(cmd *cobra.Command) {
	f.traceFlags.register(cmd)
	f.policyFlags.register(cmd)
	f.outputFlags.register(cmd)
}

func runTraced(cmd *cobra.Command, argv []string, f *runFlags) error {
	if err := f.traceFlags.validate(); err != nil {
		return err
	}
	pol, err := f.load()
	if err != nil {
		return err
	}
	// A report that cannot be written is found out now, not after CMD ran.
	if err := checkOutputs(f.jsonPath, f.pprof, f.sarif, f.junit, f.writeBaseline); err != nil {
		return err
	}
	if err := lookCommand(argv[0]); err != nil {
		return err
	}
	if err := tracer.CheckPrivileges(); err != nil {
		return &userError{code: exitUsage, msg: err.Error()}
	}
	cfg := f.tracerConfig()
	sess, err := session.New(session.Options{Mode: aggregator.ModeRun, Tracer: cfg})
	if err != nil {
		return kernelError(err)
	}
	defer sess.Close()

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- sess.Run(stop) }()

	// The command gets the terminal's signals itself; leaktrace outlives it
	// to write the report.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	child, err := sess.Start(argv)
	if err != nil {
		close(stop)
		<-done
		if errors.Is(err, session.ErrCommandNotFound) {
			return &userError{code: exitNotFound, msg: err.Error()}
		}
		if errors.Is(err, session.ErrCommandNotExecutable) {
			return &userError{code: exitNotExecutable, msg: err.Error()}
		}
		return err
	}
	go func() {
		for s := range sigs {
			child.Process.Signal(s)
		}
	}()
	waitErr := child.Wait()
	exitCode := 0
	if waitErr != nil {
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) {
			return fmt.Errorf("waiting for %s: %w", argv[0], waitErr)
		}
		exitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			exitCode = 128 + int(ws.Signal())
		}
	}
	close(stop)
	if err := <-done; err != nil {
		return fmt.Errorf("reading events: %w", err)
	}

	r, err := sess.Report(session.ReportInfo{Mode: "run", Command: argv, ExitCode: exitCode, CountInherited: f.countInherited})
	if err != nil {
		return fmt.Errorf("building report: %w", err)
	}
	pol.Apply(r)
	werr := writeReports(r, &f.traceFlags)
	if werr == nil {
		werr = f.outputFlags.write(r)
	}
	if werr != nil {
		if exitCode == 0 {
			return werr
		}
		// CMD's own failure is what the caller must see.
		fmt.Fprintf(os.Stderr, "leaktrace: %v\n", werr)
	}
	if exitCode != 0 {
		return &exitError{code: exitCode}
	}
	return budgetExit(r)
}

// budgetExit is the exit a budget verdict asks for: 98 when the report is
// incomplete and the user did not allow judging it anyway (lost events can
// hide leaks as well as invent them), 99 when a limit was exceeded.
func budgetExit(r *report.Report) error {
	switch {
	case r.Budget == nil:
		return nil
	case r.Budget.Incomplete:
		return &exitError{code: exitBudgetIncomplete}
	case r.Budget.Exceeded:
		return &exitError{code: exitBudgetExceeded}
	}
	return nil
}

// lookCommand finds CMD as the shell would, and fails as the shell does:
// 127 when there is no such command, 126 when it exists but cannot run.
func lookCommand(name string) error {
	if _, err := exec.LookPath(name); err == nil {
		return nil
	}
	var candidates []string
	if strings.Contains(name, "/") {
		candidates = []string{name}
	} else {
		for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
			candidates = append(candidates, filepath.Join(cmp.Or(dir, "."), name))
		}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil {
			why := "not executable"
			if fi.IsDir() {
				why = "a directory"
			}
			return &userError{code: exitNotExecutable, msg: fmt.Sprintf("permission denied: %s is %s (chmod +x it, or name the program that runs it)", c, why)}
		}
	}
	return &userError{code: exitNotFound, msg: fmt.Sprintf("command not found: %s (check the name and $PATH)", name)}
}

// writeReports prints the text report to stderr and writes the files asked for.
func writeReports(r *report.Report, f *traceFlags) error {
	if err := exporter.WriteText(os.Stderr, r, exporter.TextOptions{MaxFrames: f.maxFrames, Color: colorOn(os.Stderr)}); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	if f.jsonPath != "" {
		if err := writeFile(f.jsonPath, func(w *os.File) error { return exporter.WriteJSON(w, r) }); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(*os.File) error) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := write(out); err != nil {
		out.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// kernelError turns a tracer failure into a one-line cause with what to do.
func kernelError(err error) error {
	var te *tracer.Error
	if errors.As(err, &te) {
		return &userError{code: exitUsage, msg: te.Error()}
	}
	return &userError{code: exitUsage, msg: fmt.Sprintf("loading the BPF programs failed: %v (needs Linux 6.1+ with BTF; run with -v for detail)", err)}
}

// stackBytes maps --stack-bytes to the tracer's setting: 0 on the command
// line copies no stack (frame pointers only), where 0 in a Config means the
// default.
func stackBytes(flag int) int {
	if flag == 0 {
		return tracer.NoStackCopy
	}
	return flag
}
