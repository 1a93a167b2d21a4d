//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// hookShare is where an untraced process's time goes in the syscall hooks,
// by sampling: the kernel's BPF accounting sees only the programs' bodies
// (and adds a clock read to each), not the tracepoint's dispatch around
// them, which fires for every task once any syscall tracepoint is on.
type hookShare struct {
	hooks float64 // % of the process's samples under the kernel's syscall tracing (dispatch and programs)
	progs float64 // % in leaktrace's hook programs, their subprograms included
}

// leaktraceHook matches leaktrace's hook programs as the kernel names their
// JIT images (bpf_prog_TAG_NAME).
var leaktraceHook = regexp.MustCompile(`^bpf_prog_[0-9a-f]+_(sys_enter|sys_exit|sys_enter_tp|sys_exit_tp)$`)

// perfHookShare runs the untraced workload args once under `perf record -g`
// and reads from its samples the share of the process's time spent in the
// syscall tracing paths (syscall_trace_enter, syscall_exit_work) and in
// leaktrace's programs there.
func (b *bench) perfHookShare(args []string) (hookShare, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return hookShare{}, fmt.Errorf("perf is not installed (Debian: apt-get install linux-perf)")
	}
	data := filepath.Join(b.dir, "perf.data")
	defer os.Remove(data)
	sampled := tracerCmd{"perf", func(cmd []string) []string {
		return append([]string{perf, "record", "-q", "-g", "-o", data, "--"}, cmd...)
	}}
	if _, err := b.once(sampled, args); err != nil {
		return hookShare{}, err
	}
	out, err := exec.Command(perf, "report", "-i", data, "--children", "--sort", "sym", "--stdio", "-g", "none").Output()
	if err != nil {
		return hookShare{}, fmt.Errorf("perf report: %w", err)
	}
	return parseHookShare(out)
}

// parseHookShare reads `perf report --children --sort sym --stdio -g none`:
// lines "  CHILDREN%  SELF%  [k] SYMBOL".
func parseHookShare(report []byte) (hookShare, error) {
	var h hookShare
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(report))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || strings.HasPrefix(f[0], "#") || !strings.HasSuffix(f[0], "%") {
			continue
		}
		children, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil || math.IsNaN(children) || children < 0 || children > 100 {
			continue
		}
		seen = true
		switch sym := f[len(f)-1]; {
		case sym == "syscall_trace_enter" || sym == "syscall_exit_work":
			h.hooks += children
		case leaktraceHook.MatchString(sym):
			h.progs += children
		}
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	if !seen {
		return h, fmt.Errorf("perf report has no samples")
	}
	return h, nil
}
