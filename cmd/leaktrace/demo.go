//go:build linux

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/demo"
)

func newDemoCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Trace a built-in workload that leaks files, a socket, a pipe and a child process",
		Long: `Run leaktrace's own small leaking workload (shipped in this binary) under
'leaktrace run' and print the report: a quick check that tracing works on this machine.`,
		Example: "  sudo leaktrace demo\n  sudo leaktrace demo --json demo.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding leaktrace's own binary: %w", err)
			}
			return runTraced(cmd, []string{self, workloadCmd, "demo"}, &f)
		},
	}
	f.register(cmd)
	return cmd
}

const workloadCmd = "__workload"

// newWorkloadCmd runs a built-in workload in this process: it is what demo
// traces, hidden from help.
func newWorkloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:    workloadCmd + " NAME",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "demo":
				return demo.Run()
			}
			return fmt.Errorf("unknown workload %q", args[0])
		},
	}
}
