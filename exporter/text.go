// Package exporter renders leak reports: the human text report, the JSON document
// described in docs/json-schema.md, and the live terminal view of attach.
package exporter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/leaktrace/leaktrace/report"
)

// DefaultMaxFrames is how many frames of a stack WriteText prints when
// TextOptions.MaxFrames is not set.
const DefaultMaxFrames = 16

const (
	maxTargets  = 3 // example targets per site
	maxExamples = 5 // example handles of the no-stack group
	maxPreview  = 3 // example handles of the preexisting group
	maxPIDs     = 8 // pids listed per site
	// maxProcesses caps the process table.
	maxProcesses = 12
)

// TextOptions tunes WriteText.
type TextOptions struct {
	// MaxFrames caps the frames printed per stack; 0 or less means DefaultMaxFrames.
	MaxFrames int
	// Color adds ANSI bold to headlines and red to warnings; set it only when the
	// output is a terminal.
	Color bool
}

// WriteText writes the human report: header, warnings, leak sites ranked worst
// first with their stacks, leaks without a stack, handles left out of the count
// (inherited copies, a language runtime's own handles, handles open before attach),
// processes, and a one-line summary that CI logs can grep.
func WriteText(w io.Writer, r *report.Report, opts TextOptions) error {
	if r == nil {
		return errors.New("writing text report: nil report")
	}
	if opts.MaxFrames <= 0 {
		opts.MaxFrames = DefaultMaxFrames
	}
	bw := bufio.NewWriter(w)
	t := &textReport{w: bw, r: r, opts: opts, live: isLive(r.Mode), acc: account(r)}
	t.header()
	t.warnings()
	t.sites()
	t.noStack()
	t.orphans()
	t.excluded()
	t.internal()
	t.preexisting()
	t.heldAtExit()
	t.young()
	t.mapped()
	t.processes()
	t.executables()
	t.summary()
	// bufio keeps the first write error and returns it here.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing text report: %w", err)
	}
	return nil
}

type textReport struct {
	w    *bufio.Writer
	r    *report.Report
	opts TextOptions
	live bool
	acc  accounting
}

const (
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[1;31m"
	ansiReset = "\x1b[0m"
)

func (t *textReport) style(code, s string) string {
	if !t.opts.Color {
		return s
	}
	return code + s + ansiReset
}

func (t *textReport) line(format string, args ...any) {
	fmt.Fprintf(t.w, format, args...)
	t.w.WriteByte('\n')
}

func (t *textReport) header() {
	r := t.r
	var b strings.Builder
	b.WriteString("leaktrace")
	if r.Mode != "" {
		b.WriteString(" " + clean(r.Mode))
	}
	switch {
	case len(r.Command) > 0:
		b.WriteString(": " + shellJoin(r.Command))
	case r.PID != 0:
		b.WriteString(": pid " + strconv.Itoa(r.PID))
		if p, ok := t.process(r.PID); ok && p.Comm != "" {
			b.WriteString(" (" + clean(p.Comm) + ")")
		}
	case len(r.Processes) > 0:
		b.WriteString(fmt.Sprintf(": %d %s", len(r.Processes), plural(len(r.Processes), "process", "processes")))
	}
	details := []string{seconds(r.Duration)}
	switch {
	case !t.live:
		details = append(details, exitText(r.ExitCode))
	case r.PID != 0:
		if p, ok := t.process(r.PID); ok && p.Exited {
			details = append(details, "target exited, "+exitText(p.ExitCode))
		}
	}
	t.line("%s", t.style(ansiBold, b.String()+" — "+strings.Join(details, ", ")))
}

// exitText renders an exit status; -1 is the model's "killed by a signal or unknown".
func exitText(code int) string {
	if code == -1 {
		return "exit -1 (signal or unknown)"
	}
	return "exit " + strconv.Itoa(code)
}

func (t *textReport) process(pid int) (report.Process, bool) {
	for _, p := range t.r.Processes {
		if p.PID == pid {
			return p, true
		}
	}
	return report.Process{}, false
}

func (t *textReport) warnings() {
	r := t.r
	if !r.Complete {
		msg := fmt.Sprintf("INCOMPLETE: %d events lost (%d received)", r.Events.Lost, r.Events.Received)
		if n := t.reconciled(); n > 0 {
			msg += fmt.Sprintf(", %d %s rebuilt from /proc", n, plural(n, "fd table", "fd tables"))
		}
		msg += "; leaks may be missing or misattributed"
		t.line("%s", t.style(ansiRed, msg))
	}
	for _, n := range r.Notes {
		t.line("note: %s", clean(n))
	}
}

func (t *textReport) reconciled() int {
	n := 0
	for _, p := range t.r.Processes {
		if p.Reconciled {
			n++
		}
	}
	return n
}

func (t *textReport) summary() {
	r := t.r
	c := t.acc
	var b strings.Builder
	if c.counted == 0 {
		paired := ""
		if r.Events.PairedInKernel > 0 {
			paired = fmt.Sprintf(", %d short-lived handles settled in the kernel", r.Events.PairedInKernel)
		}
		fmt.Fprintf(&b, "leaktrace: no leaks (%d events%s, %d lost, %d %s)", r.Events.Received, paired, r.Events.Lost,
			len(r.Processes), plural(len(r.Processes), "process", "processes"))
	} else {
		fmt.Fprintf(&b, "leaktrace: %d leaked %s (%s) in %d %s", c.counted, plural(c.counted, "handle", "handles"),
			kindList(c.kinds, " "), c.sites, plural(c.sites, "site", "sites"))
		if c.procs > 0 { // unknown when a sites-only report has no process list
			fmt.Fprintf(&b, " from %d %s", c.procs, plural(c.procs, "process", "processes"))
		}
	}
	if c.uncounted > 0 {
		fmt.Fprintf(&b, ", plus %d not counted (%s)", c.uncounted, notCountedText(c))
	}
	b.WriteString(notJudgedText(r.YoungerThanMinAge))
	b.WriteString(mappedText(r.Mapped, t.live))
	if h := r.HeldAtExit; h != nil && h.Handles > 0 {
		fmt.Fprintf(&b, "; %d held at exit by %d exited %s (not leaks)", h.Handles, h.Processes, plural(h.Processes, "process", "processes"))
	}
	if !r.Complete {
		b.WriteString(" [INCOMPLETE]")
	}
	line := t.style(ansiBold, b.String())
	if r.Budget != nil {
		line += "; " + t.budgetText(r.Budget)
	}
	t.w.WriteByte('\n')
	t.line("%s", line)
}
