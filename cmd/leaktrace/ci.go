//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/policy"
	"github.com/leaktrace/leaktrace/report"
)

// policyFlags decide which leaks count and what is too many: shared by run,
// demo and report.
type policyFlags struct {
	budget          []string
	countInherited  bool
	minAge          time.Duration
	suppressions    []string
	baseline        string
	allowIncomplete bool
}

func (f *policyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.budget, "budget", nil, "fail (exit 99; 98 when events were lost) when leaks exceed `LIMITS`: N (total), KIND=N (socket=0,file=5), site=N (each site), site:PATTERN=N, mapped=SIZE (bytes left mapped: 512MiB); repeatable")
	fl.BoolVar(&f.countInherited, "count-inherited", false, "count copies a child inherited at fork and never closed as leaks")
	fl.DurationVar(&f.minAge, "min-age", 0, "do not count handles younger than `D` when their process exited (closed late by finalizers or exit paths)")
	fl.StringArrayVar(&f.suppressions, "suppressions", nil, "do not count leaks matching a rule of `FILE` (docs/suppressions.md); repeatable")
	fl.StringVar(&f.baseline, "baseline", "", "count only leaks of sites that are new or grew since `FILE` (a --write-baseline file or a --json report)")
	fl.BoolVar(&f.allowIncomplete, "allow-incomplete", false, "judge --budget even when events were lost (else such a run exits 98: its counts may be wrong)")
}

// given reports whether any policy flag was set on cmd.
func (f *policyFlags) given(cmd *cobra.Command) bool {
	for _, name := range []string{"budget", "count-inherited", "min-age", "suppressions", "baseline", "allow-incomplete"} {
		if cmd.Flags().Changed(name) {
			return true
		}
	}
	return false
}

// load reads the files the flags name and parses the budget. Every failure is
// the user's to fix, and says what to do.
func (f *policyFlags) load() (*policy.Policy, error) {
	b, err := policy.ParseBudget(f.budget)
	if err != nil {
		return nil, &userError{code: exitUsage, msg: fmt.Sprintf("bad --budget: %v", err)}
	}
	if f.minAge < 0 {
		return nil, &userError{code: exitUsage, msg: fmt.Sprintf("bad --min-age %s: want a duration >= 0, such as 500ms", f.minAge)}
	}
	p := &policy.Policy{CountInherited: f.countInherited, MinAge: f.minAge, Budget: b, AllowIncomplete: f.allowIncomplete}
	for _, path := range f.suppressions {
		s, err := readWith(path, func(r io.Reader) (*policy.Suppressions, error) { return policy.ParseSuppressions(r, path) })
		if err != nil {
			return nil, &userError{code: exitUsage, msg: fmt.Sprintf("bad --suppressions: %v (see docs/suppressions.md)", err)}
		}
		if p.Suppressions == nil {
			p.Suppressions = &policy.Suppressions{}
		}
		p.Suppressions.Append(s)
		p.SuppressionFiles = append(p.SuppressionFiles, path)
	}
	if f.baseline != "" {
		base, err := readWith(f.baseline, policy.ReadBaseline)
		if err != nil {
			return nil, &userError{code: exitUsage, msg: fmt.Sprintf("bad --baseline %s: %v", f.baseline, err)}
		}
		p.Baseline, p.BaselineFile = base, f.baseline
	}
	return p, nil
}

func readWith[T any](path string, read func(io.Reader) (T, error)) (T, error) {
	var zero T
	in, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	defer in.Close()
	return read(in)
}

// outputFlags name the report files CI systems read.
type outputFlags struct {
	pprof         string
	sarif         string
	junit         string
	writeBaseline string
}

func (f *outputFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.pprof, "pprof", "", "write counted leaks by stack as a pprof profile to `FILE` (go tool pprof -top FILE)")
	fl.StringVar(&f.sarif, "sarif", "", "write leak sites as SARIF 2.1.0 to `FILE` (GitHub code scanning)")
	fl.StringVar(&f.junit, "junit", "", "write one JUnit test case per leak site to `FILE`")
	fl.StringVar(&f.writeBaseline, "write-baseline", "", "write this run's sites and counts to `FILE`, for a later --baseline")
}

// formats maps a format name to its writer: `report --format` and the file flags.
var formats = map[string]func(io.Writer, *report.Report) error{
	"json":  exporter.WriteJSON,
	"pprof": exporter.WritePprof,
	"sarif": func(w io.Writer, r *report.Report) error {
		// Paths are placed in the checkout leaktrace runs in, as CI does.
		return exporter.WriteSARIFWith(w, r, exporter.SARIFOptionsAt("."))
	},
	"junit": exporter.WriteJUnit,
	"baseline": func(w io.Writer, r *report.Report) error {
		return policy.WriteBaseline(w, policy.BaselineOf(r))
	},
}

func (f *outputFlags) write(r *report.Report) error {
	for _, o := range []struct{ path, format string }{
		{f.pprof, "pprof"}, {f.sarif, "sarif"}, {f.junit, "junit"}, {f.writeBaseline, "baseline"},
	} {
		if o.path == "" {
			continue
		}
		write := formats[o.format]
		if err := writeFile(o.path, func(w *os.File) error { return write(w, r) }); err != nil {
			return err
		}
	}
	return nil
}

func formatNames() string {
	return strings.Join([]string{"text", "json", "pprof", "sarif", "junit", "baseline"}, ", ")
}
