//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/policy"
	"github.com/leaktrace/leaktrace/report"
)

type reportFlags struct {
	policyFlags
	format    string
	output    string
	maxFrames int
}

func newReportCmd() *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report FILE.json",
		Short: "Re-render a saved JSON report, and judge it again with budgets, baselines and suppressions",
		Long: `Read a report written by 'run --json' (or attach) and write it in another format.
An fd-exhaustion incident the agent wrote (--incidents.dir) renders as text or json.
Given any of --budget, --baseline, --suppressions, --min-age or --count-inherited,
the report is judged again with those flags alone: they replace the policy it was
made with (pass them all again). FILE.json '-' reads stdin.

Exit codes: 0; 99 when --budget was given and is exceeded; 98 when --budget was
given but the report is incomplete (events were lost) and --allow-incomplete was
not; 125 on a bad flag or an unreadable report.`,
		Example: `  leaktrace report leaks.json
  leaktrace report leaks.json --format sarif -o leaks.sarif
  leaktrace report leaks.json --budget socket=0 --baseline main-leaks.json --suppressions leaktrace.supp`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rerender(cmd, args[0], &f)
		},
	}
	f.policyFlags.register(cmd)
	cmd.Flags().StringVarP(&f.format, "format", "f", "text", "output `FORMAT`: "+formatNames())
	cmd.Flags().StringVarP(&f.output, "output", "o", "-", "write to `FILE` ('-': stdout)")
	cmd.Flags().IntVar(&f.maxFrames, "max-frames", exporter.DefaultMaxFrames, "stack frames shown per site in the text format")
	return cmd
}

func rerender(cmd *cobra.Command, path string, f *reportFlags) error {
	if f.maxFrames < 1 {
		return usagef("bad --max-frames %d: want 1 or more", f.maxFrames)
	}
	if ok, err := renderIncident(cmd, path, f); ok {
		return err
	}
	write, ok := formats[f.format]
	if f.format == "text" {
		write, ok = func(w io.Writer, r *report.Report) error {
			return exporter.WriteText(w, r, exporter.TextOptions{MaxFrames: f.maxFrames})
		}, true
	}
	if !ok {
		return &userError{code: exitUsage, msg: fmt.Sprintf("unknown --format %q (formats: %s)", f.format, formatNames())}
	}
	var pol *policy.Policy
	if f.given(cmd) {
		p, err := f.load()
		if err != nil {
			return err
		}
		pol = p
	}
	r, err := readReport(path, cmd.InOrStdin())
	if err != nil {
		return &userError{code: exitUsage, msg: err.Error()}
	}
	if pol != nil {
		pol.Apply(r)
	}
	if f.output == "-" {
		if err := write(cmd.OutOrStdout(), r); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	} else if err := writeFile(f.output, func(w *os.File) error { return write(w, r) }); err != nil {
		return err
	}
	if cmd.Flags().Changed("budget") {
		return budgetExit(r)
	}
	return nil
}

func readReport(path string, stdin io.Reader) (*report.Report, error) {
	if path == "-" {
		return exporter.ReadJSON(stdin)
	}
	in, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no report at %s (write one with 'leaktrace run --json %s -- CMD')", path, path)
		}
		return nil, err
	}
	defer in.Close()
	r, err := exporter.ReadJSON(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}
