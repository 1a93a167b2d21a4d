// Command leaktrace finds resource-handle leaks (fds, sockets, pipes, threads,
// child processes) in running Linux programs, from the kernel side.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/report"
)

// Exit codes of leaktrace itself; `run` otherwise exits with the command's code.
const (
	exitOK             = 0
	exitBudgetExceeded = 99  // run: the command succeeded but leaked over --budget
	exitUsage          = 125 // leaktrace's own failure: flags, privileges, kernel
	exitNotFound       = 127 // run: the command was not found
)

// exitError carries an exit code out of a command without printing anything.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// userError is a failure the user can fix; it prints as one line.
type userError struct {
	code int
	msg  string
}

func (e *userError) Error() string { return e.msg }

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "leaktrace: %v\n", err)
	var ue *userError
	if errors.As(err, &ue) {
		return ue.code
	}
	return exitUsage
}

func newRoot() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "leaktrace",
		Short: "Find leaked fds, sockets, pipes, threads and child processes, and the line that made them",
		Long: `leaktrace traces a program from the kernel with eBPF, pairs every handle it creates
with its release, and reports the handles that were never released, grouped by the
call stack that created them.

  leaktrace demo                      trace a built-in leaking workload
  leaktrace run [flags] -- CMD ARGS   trace CMD and its children; report leaks at exit
  leaktrace attach PID                trace a live process until Ctrl-C or --duration
  leaktrace report FILE.json          re-render a saved report, judge it again
  leaktrace agent                     trace the host; serve Prometheus metrics and alerts`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail to stderr")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &userError{code: exitUsage, msg: fmt.Sprintf("%v (see '%s --help')", err, cmd.CommandPath())}
	})
	root.AddCommand(newRunCmd(), newAttachCmd(), newAgentCmd(), newDemoCmd(), newReportCmd(), newWorkloadCmd(), newVersionCmd(), newVerifierReportCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print leaktrace's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "leaktrace", report.BuildVersion())
		},
	}
}
