//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/tracer"
)

type verifierRow struct {
	Setting   string `json:"setting"`
	Program   string `json:"program"`
	Processed int    `json:"processed_insns"`
	States    int    `json:"total_states"`
	LoadMs    int64  `json:"load_ms"`
	// StackBytes is the deepest chain of calls' stack as Linux 6.1 counts
	// it (each frame rounded up to 32; the bound is 512), 0 if unknown;
	// StackPath names its functions, entry first.
	StackBytes int    `json:"stack_bytes,omitempty"`
	StackPath  string `json:"stack_path,omitempty"`
}

func newVerifierReportCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verifier-report",
		Short: "Load every BPF program at every setting and print the verifier's own figures",
		Long: `Load leaktrace's BPF programs in each mode (run, paired run, agent, filtered agent)
at each --stack-bytes extreme, print the instructions the verifier processed per
program (the kernel's limit is 1,000,000), its states, the stack of its deepest chain
of calls as Linux 6.1 counts it (each frame rounded up to 32 bytes; the bound is 512),
and the load time, then unload them. Nothing is traced. Needs root.`,
		Example: `  sudo leaktrace verifier-report
  sudo leaktrace verifier-report --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var rows []verifierRow
			for _, s := range tracer.VerifierSettings() {
				stats, took, err := tracer.VerifierReport(s.Config)
				if err != nil {
					return fmt.Errorf("%s: %w", s.Name, err)
				}
				for _, st := range stats {
					rows = append(rows, verifierRow{Setting: s.Name, Program: st.Program, Processed: st.Processed, States: st.States, LoadMs: took.Milliseconds(),
						StackBytes: st.Stack.Bytes, StackPath: strings.Join(st.Stack.Path, " > ")})
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "SETTING\tPROGRAM\tPROCESSED INSNS\tSTATES\tSTACK (of 512)\tLOAD ms\t")
			for _, r := range rows {
				stack := "-"
				if r.StackBytes > 0 {
					stack = fmt.Sprint(r.StackBytes)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t\n", r.Setting, r.Program, r.Processed, r.States, stack, r.LoadMs)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON rows instead of a table")
	return cmd
}
