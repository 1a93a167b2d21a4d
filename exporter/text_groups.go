package exporter

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/leaktrace/leaktrace/report"
)

// handleText renders one handle: "pid 12 (python3) fd 7 file /tmp/x".
func handleText(l report.Leak, live bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", l.PID)
	if l.Comm != "" {
		b.WriteString(" (" + clean(l.Comm) + ")")
	}
	switch {
	case l.FD >= 0:
		fmt.Fprintf(&b, " fd %d", l.FD)
	case l.Kind == "process" && l.TID != 0:
		fmt.Fprintf(&b, " child %d", l.TID)
	case l.TID != 0:
		fmt.Fprintf(&b, " tid %d", l.TID)
	}
	b.WriteString(" " + clean(l.Kind))
	if l.Target != "" {
		b.WriteString(" " + clean(l.Target))
	}
	if live && l.AgeSeconds > 0 {
		b.WriteString(", age " + seconds(l.AgeSeconds))
	}
	if l.Inherited {
		b.WriteString(" (inherited at fork)")
	}
	if l.HandedOver {
		b.WriteString(" (handed over at fork)")
	}
	return b.String()
}

// group prints a titled group of handles outside the ranked sites: counts by kind
// and a few examples.
func (t *textReport) group(title string, leaks []report.Leak, examples int, live, where bool) {
	kinds := map[string]int{}
	for _, l := range leaks {
		kinds[l.Kind]++
	}
	t.w.WriteByte('\n')
	t.line("%s", t.style(ansiBold, fmt.Sprintf("%s: %d %s (%s)", title, len(leaks),
		plural(len(leaks), "handle", "handles"), kindList(kinds, " "))))
	shown := min(len(leaks), examples)
	for _, l := range leaks[:shown] {
		ex := handleText(l, live)
		if where && len(l.Stack) > 0 {
			ex += " from " + headlineText(stackHeadline(l.Stack))
		}
		t.line("  %s", ex)
	}
	if k := len(leaks) - shown; k > 0 && shown > 0 {
		t.line("  … and %d more", k)
	}
}

// stackHeadline picks a frame to name a stack that has no site: the first one with
// a source file, else the first with a function, else the innermost.
func stackHeadline(stack []report.Frame) report.Frame {
	for _, f := range stack {
		if f.File != "" && f.Function != "" {
			return f
		}
	}
	for _, f := range stack {
		if f.Function != "" {
			return f
		}
	}
	return stack[0]
}

func (t *textReport) noStack() {
	if leaks := t.acc.bySite[""]; len(leaks) > 0 {
		t.group("no stack", leaks, maxExamples, t.live, false)
		return
	}
	// A report that carries sites but no leak list still has its stackless count.
	for _, s := range t.r.Sites {
		if s.Key == "" && s.Count > 0 {
			t.w.WriteByte('\n')
			t.line("%s", t.style(ansiBold, fmt.Sprintf("no stack: %d %s (%s)", s.Count,
				plural(s.Count, "handle", "handles"), kindList(s.Kinds, " "))))
			if len(s.Targets) > 0 {
				t.line("  targets: %s", clean(strings.Join(s.Targets[:min(len(s.Targets), maxTargets)], ", ")))
			}
		}
	}
}

// orphans prints leaks whose stack belongs to no site: the session leaves
// inherited copies out of every site unless --count-inherited was given.
func (t *textReport) orphans() {
	if len(t.acc.orphans) == 0 {
		return
	}
	title := "inherited at fork (not counted)"
	for _, l := range t.acc.orphans {
		if !l.Inherited {
			title = "not in any site (not counted)"
			break
		}
	}
	t.group(title, t.acc.orphans, maxExamples, t.live, true)
}

func (t *textReport) internal() {
	if len(t.acc.internal) > 0 {
		t.group("language runtime's own (not counted)", t.acc.internal, 0, false, false)
	}
}

func (t *textReport) preexisting() {
	if len(t.r.Preexisting) > 0 {
		t.group("open before attach (not counted)", t.r.Preexisting, maxPreview, false, false)
	}
}

func (t *textReport) processes() {
	if len(t.r.Processes) < 2 {
		return
	}
	procs := slices.Clone(t.r.Processes)
	slices.SortStableFunc(procs, func(a, b report.Process) int { return cmp.Compare(a.PID, b.PID) })
	// A build or a shell script forks dozens of helpers: past a screenful, list
	// the first process (the traced command) and the ones that leaked.
	shown := procs
	if len(procs) > maxProcesses {
		shown = nil
		for i, p := range procs {
			if i == 0 || p.Leaked > 0 || p.Reconciled {
				shown = append(shown, p)
			}
		}
		shown = shown[:min(len(shown), maxProcesses)]
	}
	t.w.WriteByte('\n')
	t.line("%s", t.style(ansiBold, fmt.Sprintf("processes: %d", len(procs))))
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	held := t.r.HeldAtExit != nil && t.r.HeldAtExit.Handles > 0
	if held {
		fmt.Fprintln(tw, "  PID\tPPID\tCOMM\tLEAKED\tHELD AT EXIT\tEXIT")
	} else {
		fmt.Fprintln(tw, "  PID\tPPID\tCOMM\tLEAKED\tEXIT")
	}
	for _, p := range shown {
		exit := "running"
		switch {
		case p.Exited && p.ExitCode == -1:
			exit = "signal/unknown"
		case p.Exited:
			exit = strconv.Itoa(p.ExitCode)
		}
		if p.Reconciled {
			exit += " (fd table rebuilt from /proc)"
		}
		if held {
			fmt.Fprintf(tw, "  %d\t%d\t%s\t%d\t%d\t%s\n", p.PID, p.PPID, clean(p.Comm), p.Leaked, p.HeldAtExit, exit)
		} else {
			fmt.Fprintf(tw, "  %d\t%d\t%s\t%d\t%s\n", p.PID, p.PPID, clean(p.Comm), p.Leaked, exit)
		}
	}
	tw.Flush()
	if k := len(procs) - len(shown); k > 0 {
		leaked := 0
		for _, p := range procs {
			leaked += p.Leaked
		}
		for _, p := range shown {
			leaked -= p.Leaked
		}
		t.line("  … and %d more %s (%d leaked)", k, plural(k, "process", "processes"), leaked)
	}
}
