//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/vmtest/result"
)

// Under TCG a BPF load takes seconds; these bound one leaktrace command.
const (
	runTimeout   = 120 * time.Second
	agentTimeout = 120 * time.Second
)

type check struct {
	name string
	run  func() result.Check
}

func (g *guest) checks() []check {
	if g.expect == "refuse" {
		return []check{{"refuse", g.refuse}}
	}
	var cs []check
	// Default and the two extremes of --stack-bytes (0 copies no stack).
	for _, sb := range []int{-1, 0, 8192} {
		suffix := ""
		if sb >= 0 {
			suffix = fmt.Sprintf("/stack-%d", sb)
		}
		cs = append(cs,
			check{"run-leaky" + suffix, func() result.Check { return g.runLeaky(sb) }},
			check{"run-balanced" + suffix, func() result.Check { return g.runBalanced(sb) }},
		)
	}
	return append(cs,
		check{"file-rules", g.fileRules},
		check{"compat", g.compat},
		check{"mapped", g.mapped},
		check{"attach", g.attach},
		check{"agent", g.agent},
		check{"verifier-report", g.verifierReport},
	)
}

// invocation is one finished command.
type invocation struct {
	code           int // -1: did not start or was killed
	stdout, stderr string
	err            error
}

func (g *guest) leaktrace(timeout time.Duration, env []string, args ...string) invocation {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(g.bin, "leaktrace"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	inv := invocation{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		inv.err = fmt.Errorf("timed out after %s", timeout)
	} else if err != nil && !errors.As(err, new(*exec.ExitError)) {
		inv.err = err
	}
	return inv
}

// failed describes a leaktrace command that did not do its job, with a BPF
// refusal summarized as program and reason. The first time a failure is seen
// its stderr is passed on too (head and tail of a long verifier log).
func (g *guest) failed(inv invocation, what string) result.Check {
	lines := nonEmptyLines(inv.stderr)
	if len(lines) > 1 && !g.shown[lines[0]] {
		if g.shown == nil {
			g.shown = map[string]bool{}
		}
		g.shown[lines[0]] = true
		if len(lines) > 25 {
			lines = append(append(lines[:5:5], fmt.Sprintf("[%d lines]", len(lines)-20)), lines[len(lines)-15:]...)
		}
		for _, l := range lines {
			g.send(result.Message{Kind: result.KindLog, Text: what + ": " + clip(l, 300)})
		}
	}
	if inv.err != nil {
		return fail("%s: %v; %s", what, inv.err, summarize(inv.stderr))
	}
	return fail("%s: exit %d: %s", what, inv.code, summarize(inv.stderr))
}

func stackFlags(stackBytes int) []string {
	if stackBytes < 0 {
		return nil
	}
	return []string{"--stack-bytes", strconv.Itoa(stackBytes)}
}

// truth is what a test program says about itself before it exits (testdata/leaky-c/truth.h).
type truth struct {
	open  []int          // /proc/self/fd at exit, 0-2 left out
	leaks map[int]string // fd -> function that leaked it on purpose
}

func readTruth(path string) (truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return truth{}, fmt.Errorf("the program wrote no ground truth: %w", err)
	}
	tr := truth{leaks: map[int]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		fd, err := strconv.Atoi(f[1])
		if err != nil {
			return tr, fmt.Errorf("bad truth line %q", sc.Text())
		}
		switch {
		case f[0] == "open" && fd > 2:
			tr.open = append(tr.open, fd)
		case f[0] == "leak" && len(f) > 2:
			tr.leaks[fd] = f[2]
		}
	}
	slices.Sort(tr.open)
	return tr, nil
}

// runTraced runs `leaktrace run` on the leaky program with ARG and returns
// the report and the program's own truth.
func (g *guest) runTraced(stackBytes int, arg ...string) (*report.Report, truth, result.Check, bool) {
	dir, err := os.MkdirTemp("", "run")
	if err != nil {
		return nil, truth{}, fail("%v", err), false
	}
	defer os.RemoveAll(dir)
	jsonPath, truthPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "truth")
	args := append([]string{"run", "--json", jsonPath}, stackFlags(stackBytes)...)
	args = append(append(args, "--", filepath.Join(g.bin, "leaky")), arg...)
	inv := g.leaktrace(runTimeout, []string{"LEAKTRACE_TRUTH=" + truthPath}, args...)
	if inv.err != nil || inv.code != 0 {
		return nil, truth{}, g.failed(inv, "leaktrace run"), false
	}
	r, err := readReport(jsonPath)
	if err != nil {
		return nil, truth{}, fail("%v", err), false
	}
	tr, err := readTruth(truthPath)
	if err != nil {
		return nil, truth{}, fail("%v", err), false
	}
	return r, tr, result.Check{}, true
}

func readReport(path string) (*report.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("no JSON report: %w", err)
	}
	defer f.Close()
	r, err := exporter.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("reading the JSON report: %w", err)
	}
	return r, nil
}

// runLeaky: the report lists exactly the fds the program held at exit, counts
// exactly those it leaked on purpose, and (with a stack copy) names the
// function that leaked each.
func (g *guest) runLeaky(stackBytes int) result.Check {
	r, tr, c, ok := g.runTraced(stackBytes)
	if !ok {
		return c
	}
	if len(tr.leaks) == 0 {
		return fail("the program reported no intentional leaks")
	}
	var problems []string
	if !r.Complete {
		problems = append(problems, fmt.Sprintf("report incomplete: %v", r.Notes))
	}
	pid := r.RootPID()
	var reported, counted []int
	byFD := map[int]report.Leak{}
	for _, l := range r.Leaks {
		if l.PID != pid || l.FD < 0 || l.Inherited {
			continue
		}
		reported = append(reported, l.FD)
		byFD[l.FD] = l
		if l.Counted {
			counted = append(counted, l.FD)
		}
	}
	slices.Sort(reported)
	slices.Sort(counted)
	want := make([]int, 0, len(tr.leaks))
	for fd := range tr.leaks {
		want = append(want, fd)
	}
	slices.Sort(want)
	if !slices.Equal(reported, tr.open) {
		problems = append(problems, fmt.Sprintf("leaked fds %v, the kernel had open at exit %v", reported, tr.open))
	}
	if !slices.Equal(counted, want) {
		problems = append(problems, fmt.Sprintf("counted leaks %v, the program's own %v", counted, want))
	}
	named := 0
	if stackBytes != 0 { // with no stack copy, libc's wrappers end the unwind early
		for _, fd := range want {
			l, ok := byFD[fd]
			if !ok {
				continue
			}
			if report.HasFunction(l.Stack, tr.leaks[fd]) {
				named++
			} else {
				problems = append(problems, fmt.Sprintf("fd %d's stack does not name %s (%s)", fd, tr.leaks[fd], headline(l.Stack)))
			}
		}
	}
	if len(problems) > 0 {
		return fail("%s", strings.Join(problems, "; "))
	}
	if stackBytes == 0 {
		return pass("%d leaks = the program's own (fds only: no stack copy), %d events", len(counted), r.Events.Received)
	}
	return pass("%d leaks = the program's own, each stack names its function, %d events", named, r.Events.Received)
}

func headline(stack []report.Frame) string {
	var fns []string
	for _, f := range stack {
		if f.Function != "" {
			fns = append(fns, f.Function)
		}
		if len(fns) == 3 {
			break
		}
	}
	if len(fns) == 0 {
		return "no symbols"
	}
	return strings.Join(fns, " < ")
}

// runBalanced: a program that releases everything it creates has no leak.
func (g *guest) runBalanced(stackBytes int) result.Check {
	r, tr, c, ok := g.runTraced(stackBytes, "balanced")
	if !ok {
		return c
	}
	var counted []string
	for _, l := range r.Leaks {
		if l.Counted {
			counted = append(counted, fmt.Sprintf("fd %d %s %s", l.FD, l.Kind, l.Target))
		}
	}
	switch {
	case len(tr.open) != 0:
		return fail("the balanced program held fds %v at exit", tr.open)
	case len(counted) > 0:
		return fail("%d leaks reported, want 0: %s", len(counted), strings.Join(counted, ", "))
	case !r.Complete:
		return fail("report incomplete: %v", r.Notes)
	}
	return pass("0 leaks, %d events", r.Events.Received)
}

// fileRules: a program run three times in turn, each a new process image of
// the same file: the later runs take the unwind rules the first taught for
// the file (the kernel reads the file's inode from the pc's mapping, its
// modification time as this kernel's struct inode has it), and leak nothing.
func (g *guest) fileRules() result.Check {
	r, _, c, ok := g.runTraced(-1, "again", "3")
	if !ok {
		return c
	}
	st := r.Events.Stacks
	switch {
	case !r.Complete:
		return fail("report incomplete: %v", r.Notes)
	case st == nil:
		return fail("the report has no stack counts")
	case st.FileRules == 0:
		return fail("no unwind rule was taken from a file (stacks %+v)", *st)
	}
	for _, l := range r.Leaks {
		if l.Counted {
			return fail("leak reported: fd %d %s %s", l.FD, l.Kind, l.Target)
		}
	}
	return pass("%d rules taken from files; stacks: %d site, %d new, %d copies", st.FileRules, st.Site, st.New, st.Copy)
}

// compat runs a program making 32-bit syscalls (int $0x80): the report must
// say they were not followed and be incomplete, never misread them.
func (g *guest) compat() result.Check {
	dir, err := os.MkdirTemp("", "compat-")
	if err != nil {
		return fail("temp dir: %v", err)
	}
	defer os.RemoveAll(dir)
	jsonPath := filepath.Join(dir, "report.json")
	inv := g.leaktrace(runTimeout, nil, "run", "--json", jsonPath, "--", filepath.Join(g.bin, "compat"))
	if inv.code != 0 {
		return g.failed(inv, "leaktrace run compat")
	}
	r, err := readReport(jsonPath)
	if err != nil {
		return fail("%v", err)
	}
	if r.Complete {
		return fail("report of 32-bit syscalls is complete: %v", r.Notes)
	}
	for _, n := range r.Notes {
		if strings.Contains(n, "32-bit (compat) syscalls") {
			return pass("incomplete, %d events lost: %s", r.Events.Lost, n)
		}
	}
	return fail("no note names the 32-bit syscalls: %v", r.Notes)
}

// slowLeaker starts the leaky program's slow mode (one fd opened before
// "ready", then one leaked per 10 ms for about 40 s: a BPF load under TCG
// takes seconds) and returns once it is ready. The caller kills it.
func (g *guest) slowLeaker() (*exec.Cmd, int, error) {
	cmd := exec.Command(filepath.Join(g.bin, "leaky"), "slow", "4000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting leaky slow: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var pre int
	if _, serr := fmt.Sscanf(line, "ready %d", &pre); err != nil || serr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, 0, fmt.Errorf("leaky slow did not say ready: %q %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	return cmd, pre, nil
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// openFDs is the set of fds /proc/PID/fd lists.
func openFDs(pid int) (map[int]bool, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	fds := map[int]bool{}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			fds[fd] = true
		}
	}
	return fds, nil
}

// attach: leaktrace attached to a live leaking process counts leaks, and
// every counted one is still open in /proc/PID/fd when attach ends.
func (g *guest) attach() result.Check {
	cmd, pre, err := g.slowLeaker()
	if err != nil {
		return fail("%v", err)
	}
	defer stop(cmd)
	pid := cmd.Process.Pid
	dir, err := os.MkdirTemp("", "attach")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	jsonPath := filepath.Join(dir, "report.json")
	inv := g.leaktrace(runTimeout, nil, "attach", "--duration", "3s", "--min-age", "1s", "--json", jsonPath, strconv.Itoa(pid))
	// Read the kernel's truth before the process can open or exit more.
	cmd.Process.Signal(syscall.SIGSTOP)
	open, ferr := openFDs(pid)
	if inv.err != nil || inv.code != 0 {
		return g.failed(inv, "leaktrace attach")
	}
	if ferr != nil {
		return fail("the target exited before attach ended (%v)", ferr)
	}
	r, err := readReport(jsonPath)
	if err != nil {
		return fail("%v", err)
	}
	var counted, notOpen []int
	for _, l := range r.Leaks {
		if !l.Counted || l.PID != pid || l.FD < 0 {
			continue
		}
		counted = append(counted, l.FD)
		if !open[l.FD] {
			notOpen = append(notOpen, l.FD)
		}
	}
	preListed := slices.ContainsFunc(r.Preexisting, func(l report.Leak) bool { return l.FD == pre })
	switch {
	case len(counted) == 0:
		return fail("no leaks counted (%d events received)", r.Events.Received)
	case len(notOpen) > 0:
		sort.Ints(notOpen)
		return fail("%d of %d counted leaks are not open in /proc/%d/fd: %v", len(notOpen), len(counted), pid, notOpen)
	case !preListed:
		return fail("the fd %d opened before attach is not listed as preexisting", pre)
	}
	return pass("%d leaks counted, all open in /proc/PID/fd; fd %d listed as preexisting", len(counted), pre)
}

// agent: the agent starts, becomes ready and serves metrics naming the
// leaking process, and detaches on SIGTERM.
func (g *guest) agent() result.Check {
	leaker, _, err := g.slowLeaker()
	if err != nil {
		return fail("%v", err)
	}
	defer stop(leaker)
	pid := leaker.Process.Pid
	const addr = "127.0.0.1:9808"
	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(g.bin, "leaktrace"), "agent",
		"--web.listen-address", addr, "--interval", "1s", "--pid", strconv.Itoa(pid))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fail("starting the agent: %v", err)
	}
	// exited is closed once the agent is reaped; waitErr is its status then.
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	start := time.Now()
	metrics, err := waitMetrics(ctx, "http://"+addr, exited)
	if err != nil {
		cmd.Process.Kill()
		<-exited
		return g.failed(invocation{code: cmd.ProcessState.ExitCode(), stderr: stderr.String(), err: err}, "leaktrace agent")
	}
	ready := time.Since(start)
	var problems []string
	for _, want := range []string{"leaktrace_agent_ready 1", "leaktrace_events_received_total", fmt.Sprintf(`pid="%d"`, pid)} {
		if !strings.Contains(metrics, want) {
			problems = append(problems, fmt.Sprintf("metrics lack %s", want))
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			problems = append(problems, fmt.Sprintf("after SIGTERM: %v: %s", waitErr, summarize(stderr.String())))
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		problems = append(problems, "still running 30 s after SIGTERM")
	}
	if len(problems) > 0 {
		return fail("%s", strings.Join(problems, "; "))
	}
	return pass("ready and serving metrics after %.1f s; exited 0 on SIGTERM", ready.Seconds())
}

// waitMetrics polls /readyz until it answers 200, then returns /metrics.
func waitMetrics(ctx context.Context, base string, exited <-chan struct{}) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(b), err
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return "", errors.New("the agent exited before it was ready")
		case <-ctx.Done():
			return "", fmt.Errorf("the agent was not ready within %s", agentTimeout)
		case <-tick.C:
		}
		if code, _, err := get("/readyz"); err != nil || code != http.StatusOK {
			continue
		}
		code, body, err := get("/metrics")
		if err != nil {
			return "", fmt.Errorf("scraping /metrics: %w", err)
		}
		if code != http.StatusOK {
			return "", fmt.Errorf("/metrics answered %d", code)
		}
		return body, nil
	}
}

// verifierReport passes on the kernel's verifier figures when the binary
// offers them (`leaktrace verifier-report`): per program, the most
// instructions processed at any setting. A binary without it skips.
func (g *guest) verifierReport() result.Check {
	help := g.leaktrace(10*time.Second, nil, "verifier-report", "--help")
	if help.code != 0 || !strings.Contains(help.stdout+help.stderr, "verifier-report") {
		return skip("this leaktrace has no verifier-report command")
	}
	inv := g.leaktrace(runTimeout, nil, "verifier-report", "--json")
	if inv.err != nil || inv.code != 0 {
		return g.failed(inv, "leaktrace verifier-report")
	}
	var rows []verifierRow
	if err := json.Unmarshal([]byte(inv.stdout), &rows); err != nil || len(rows) == 0 {
		return fail("verifier-report --json: %d rows, %v", len(rows), err)
	}
	most, settings, loadMs := verifierSummary(rows)
	for _, r := range most {
		g.send(result.Message{Kind: result.KindLog, Text: fmt.Sprintf("verifier: %-20s %8d insns %6d states  (most at %s)", r.Program, r.Processed, r.States, r.Setting)})
	}
	top := most[0]
	stack := ""
	if deep := deepestStack(rows); deep.StackBytes > 0 {
		stack = fmt.Sprintf("; deepest call chain %d of 512 stack bytes (%s at %s: %s)", deep.StackBytes, deep.Program, deep.Setting, deep.StackPath)
		g.send(result.Message{Kind: result.KindLog, Text: "verifier: stack" + stack[len("; deepest"):]})
	}
	return pass("largest program %s: %d insns at %s; %d settings loaded in %.1f s%s", top.Program, top.Processed, top.Setting, settings, float64(loadMs)/1000, stack)
}

// deepestStack is the row whose deepest chain of calls takes the most stack
// (the binary's figure, as Linux 6.1 counts it); zero if none has one.
func deepestStack(rows []verifierRow) verifierRow {
	var deep verifierRow
	for _, r := range rows {
		if r.StackBytes > deep.StackBytes {
			deep = r
		}
	}
	return deep
}

// verifierRow is one row of `leaktrace verifier-report --json`.
type verifierRow struct {
	Setting   string `json:"setting"`
	Program   string `json:"program"`
	Processed int    `json:"processed_insns"`
	States    int    `json:"total_states"`
	LoadMs    int64  `json:"load_ms"`
	// The deepest chain of calls' stack and its functions (leaktrace
	// verifier-report's stack_bytes, stack_path; absent from older builds).
	StackBytes int    `json:"stack_bytes"`
	StackPath  string `json:"stack_path"`
}

// verifierSummary keeps, per program, the row with the most instructions
// processed (largest first), and sums the load time of each setting once.
func verifierSummary(rows []verifierRow) (most []verifierRow, settings int, loadMs int64) {
	byProg := map[string]verifierRow{}
	seen := map[string]bool{}
	for _, r := range rows {
		if cur, ok := byProg[r.Program]; !ok || r.Processed > cur.Processed {
			byProg[r.Program] = r
		}
		if !seen[r.Setting] {
			seen[r.Setting] = true
			loadMs += r.LoadMs
		}
	}
	for _, r := range byProg {
		most = append(most, r)
	}
	sort.Slice(most, func(i, j int) bool {
		if most[i].Processed != most[j].Processed {
			return most[i].Processed > most[j].Processed
		}
		return most[i].Program < most[j].Program
	})
	return most, len(seen), loadMs
}

// refuse: below the oldest supported kernel leaktrace exits 125 with one line
// that names what is missing and the Linux version it needs.
func (g *guest) refuse() result.Check {
	inv := g.leaktrace(runTimeout, nil, "run", "--", filepath.Join(g.bin, "leaky"), "balanced")
	if inv.err != nil {
		return g.failed(inv, "leaktrace run")
	}
	lines := nonEmptyLines(inv.stderr)
	switch {
	case inv.code != 125:
		return fail("exit %d, want 125: %s", inv.code, summarize(inv.stderr))
	case len(lines) != 1:
		return fail("%d lines on stderr, want 1: %s", len(lines), summarize(inv.stderr))
	case !needsLinux61.MatchString(lines[0]):
		return fail("the line does not say Linux 6.1+ is needed: %q", lines[0])
	}
	return pass("exit 125: %s", lines[0])
}

var needsLinux61 = regexp.MustCompile(`Linux 6\.1\b`)

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
