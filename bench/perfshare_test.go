//go:build linux

package main

import (
	"math"
	"testing"
)

const perfReport = `# To display the perf.data header info, please use --header/--header-only options.
#
# Children      Self  Symbol
# ........  ........  ..........................................
#
    98.10%     0.00%  [k] entry_SYSCALL_64_after_hwframe
     6.73%     0.86%  [k] syscall_trace_enter
     5.87%     1.63%  [k] perf_syscall_enter
     5.01%     0.27%  [k] syscall_exit_work
     1.99%     1.68%  [k] bpf_prog_0401710193d2c49b_sys_enter_tp
     1.27%     1.27%  [k] bpf_prog_0490acdf5ab1194b_sys_exit_tp
     0.40%     0.40%  [k] bpf_prog_aff664dc899e25a3_close_enter
     1.36%     1.36%  [k] __bpf_prog_enter_recur
`

func TestParseHookShare(t *testing.T) {
	h, err := parseHookShare([]byte(perfReport))
	if err != nil {
		t.Fatal(err)
	}
	// Subprograms (close_enter) are inside their hook's children already.
	if math.Abs(h.hooks-11.74) > 1e-9 || math.Abs(h.progs-3.26) > 1e-9 {
		t.Errorf("got hooks %.2f %%, programs %.2f %%; want 11.74, 3.26", h.hooks, h.progs)
	}
	if _, err := parseHookShare([]byte("# nothing sampled\n")); err == nil {
		t.Error("a report without samples: no error")
	}
}

func FuzzParseHookShare(f *testing.F) {
	f.Add([]byte(perfReport))
	f.Add([]byte("  x%  y%  [k] syscall_trace_enter\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHookShare(data)
		if err == nil && (math.IsNaN(h.hooks) || math.IsNaN(h.progs)) {
			t.Errorf("NaN share from %q", data)
		}
	})
}

func TestParseHookShareRefusesNonsense(t *testing.T) {
	h, err := parseHookShare([]byte("  NaN%  0%  [k] syscall_trace_enter\n  500%  0%  [k] syscall_exit_work\n  1.5%  0%  [k] syscall_exit_work\n"))
	if err != nil || h.hooks != 1.5 {
		t.Errorf("got %+v, %v; want hooks 1.5 from the one sane line", h, err)
	}
}
