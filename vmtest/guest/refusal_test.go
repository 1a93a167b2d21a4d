//go:build linux

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
		{"not a refusal", "leaktrace: no such pid 12\nsecond line\n", []string{"no such pid 12 [2 lines on stderr]"}},
		// Debian 6.1.176: the tracepoint has no group_dead argument.
		{"tp_btf argument missing",
			"leaktrace: loading the BPF programs failed: loading BPF programs: verifier: load program: permission denied:\n" +
				"\treg type unsupported for arg#0 function sched_process_exit#1\n\t0: R1=ctx(off=0,imm=0) R10=fp0\n" +
				"\t; int BPF_PROG(sched_process_exit, struct task_struct *task, bool group_dead)\n\t0: (79) r6 = *(u64 *)(r1 +8)\n" +
				"\tfunc 'sched_process_exit' doesn't have 2-th argument\n\tinvalid bpf_context access off=8 size=8\n" +
				"\tprocessed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0 (needs Linux 6.1+ with BTF; run with -v for detail)\n",
			[]string{"program sched_process_exit refused (permission denied): func 'sched_process_exit' doesn't have 2-th argument / invalid bpf_context access off=8 size=8",
				"processed 1 insns", "8 lines on stderr"}},
		{"named by cilium/ebpf",
			"leaktrace: loading BPF programs: field SysExit: program sys_exit: load program: argument list too long:\n" +
				"\t12: (79) r2 = *(u64 *)(r1 +16)\n\tBPF program is too large. Processed 1000001 insn\n" +
				"\tprocessed 1000001 insns (limit 1000000) max_states_per_insn 17 total_states 61466\n\t(2662 line(s) omitted)\n",
			[]string{"program sys_exit refused (argument list too long): BPF program is too large. Processed 1000001 insn", "processed 1000001 insns"}},
		// Debian 5.10: refused before any log.
		{"no log",
			"leaktrace: loading the BPF programs failed: loading BPF programs: verifier: load program: invalid argument: number of funcs in func_info doesn't match number of subprogs\n\tprocessed 0 insns\n",
			[]string{"a program refused (invalid argument): number of funcs in func_info doesn't match number of subprogs"}},
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

func TestVerifierSummary(t *testing.T) {
	rows := []verifierRow{
		{Setting: "run stack=0", Program: "sys_exit", Processed: 28758, States: 1175, LoadMs: 700},
		{Setting: "run stack=0", Program: "sys_enter", Processed: 278, LoadMs: 700},
		{Setting: "agent stack=8192", Program: "sys_exit", Processed: 28953, States: 1193, LoadMs: 400},
		{Setting: "agent stack=8192", Program: "sys_enter", Processed: 386, LoadMs: 400},
	}
	most, settings, ms := verifierSummary(rows)
	if settings != 2 || ms != 1100 {
		t.Errorf("settings %d, load %d ms; want 2, 1100", settings, ms)
	}
	if len(most) != 2 || most[0].Program != "sys_exit" || most[0].Processed != 28953 || most[0].Setting != "agent stack=8192" || most[1].Processed != 386 {
		t.Errorf("most = %+v", most)
	}
}
