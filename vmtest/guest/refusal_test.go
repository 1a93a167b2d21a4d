package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name, stderr string
		want         []string // substrings of the summary
	}{
		{"empty", "", []string{"nothing on stderr"}},
		{"one line", "leaktrace: this kernel lacks bpf_loop (Linux 5.17): leaktrace needs Linux 6.1 or newer\n",
			[]string{"lacks bpf_loop", "Linux 6.1"}},
		{"verifier log",
			"leaktrace: loading BPF programs: verifier: field SysExit: program sys_exit: load program: permission denied:\n" +
				"\t0: R1=ctx() R10=fp0\n\t; int sys_exit(struct pt_regs *regs)\n\t12: (79) r2 = *(u64 *)(r1 +16)\n" +
				"\tinvalid bpf_context access off=16 size=8\n" +
				"\tprocessed 13 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 1\n\n",
			[]string{"program sys_exit", "verifier: invalid bpf_context access off=16 size=8", "processed 13 insns", "(6 lines on stderr)"}},
		{"too large",
			"leaktrace: loading BPF programs: verifier: load program: argument list too long:\n" +
				"\t... \n\tBPF program is too large. Processed 1000001 insn\n" +
				"\tprocessed 1000001 insns (limit 1000000) max_states_per_insn 17 total_states 61466\n\t(2662 line(s) omitted)\n",
			[]string{"verifier: BPF program is too large. Processed 1000001 insn", "processed 1000001 insns"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(tc.stderr)
			if strings.Contains(got, "\n") {
				t.Errorf("summary has a newline: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("summary %q lacks %q", got, w)
				}
			}
		})
	}
}
