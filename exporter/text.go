// Package exporter renders leak reports: the human text report, the JSON document
// described in docs/json-schema.md, and the live terminal view of attach.
package exporter

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

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
// first with their stacks, leaks without a stack, handles open before attach,
// processes, and a one-line summary that CI logs can grep.
func WriteText(w io.Writer, r *report.Report, opts TextOptions) error {
	if r == nil {
		return errors.New("writing text report: nil report")
	}
	if opts.MaxFrames <= 0 {
		opts.MaxFrames = DefaultMaxFrames
	}
	bw := bufio.NewWriter(w)
	t := &textReport{w: bw, r: r, opts: opts, live: isLive(r.Mode), bySite: map[string][]report.Leak{}}
	for _, l := range r.Leaks {
		t.bySite[l.Site] = append(t.bySite[l.Site], l)
	}
	t.header()
	t.warnings()
	t.sites()
	t.noStack()
	t.preexisting()
	t.processes()
	t.summary()
	// bufio keeps the first write error and returns it here.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing text report: %w", err)
	}
	return nil
}

type textReport struct {
	w      *bufio.Writer
	r      *report.Report
	opts   TextOptions
	live   bool
	bySite map[string][]report.Leak
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

// rankedSites orders sites worst first: by Count, then Key; live modes put growing
// sites first, fastest growth first, because growth is what exhausts a table.
func rankedSites(sites []report.Site, live bool) []report.Site {
	out := slices.Clone(sites)
	slices.SortStableFunc(out, func(a, b report.Site) int {
		if live {
			if c := cmp.Compare(growing(b), growing(a)); c != 0 {
				return c
			}
			if a.Growth > 0 {
				if c := cmp.Compare(b.Growth, a.Growth); c != 0 {
					return c
				}
			}
		}
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key))
	})
	return out
}

func (t *textReport) sites() {
	for _, s := range rankedSites(t.r.Sites, t.live) {
		t.w.WriteByte('\n')
		t.site(s)
	}
}

func (t *textReport) site(s report.Site) {
	leaks := t.bySite[s.Key]
	head := leakPhrase(s.Count, s.Kinds) + " from " + headlineText(headline(s))
	if t.live && s.Growth > 0 {
		head += " [growing]"
	}
	t.line("%s", t.style(ansiBold, head))
	if t.live {
		oldest := 0.0
		for _, l := range leaks {
			oldest = max(oldest, l.AgeSeconds)
		}
		live := fmt.Sprintf("  outstanding %d, growth %s", max(s.Outstanding, s.Count), growthText(s.Growth))
		if len(leaks) > 0 {
			live += ", oldest " + seconds(oldest)
		}
		t.line("%s", live)
	}
	if targets := siteTargets(s, leaks); len(targets) > 0 {
		shown := min(len(targets), maxTargets)
		txt := make([]string, shown)
		for i, tg := range targets[:shown] {
			txt[i] = clean(tg)
		}
		more := ""
		if k := len(targets) - shown; k > 0 {
			more = fmt.Sprintf(" … and %d more", k)
		}
		t.line("  %s: %s%s", plural(len(targets), "target", "targets"), strings.Join(txt, ", "), more)
	}
	if len(s.Exes) > 0 {
		exes := make([]string, len(s.Exes))
		for i, e := range s.Exes {
			exes[i] = clean(e)
		}
		t.line("  %s: %s", plural(len(exes), "exe", "exes"), strings.Join(exes, ", "))
	}
	var own, inherited []report.Leak
	for _, l := range leaks {
		if l.Inherited {
			inherited = append(inherited, l)
		} else {
			own = append(own, l)
		}
	}
	if len(t.r.Processes) > 1 && len(own) > 0 {
		t.line("  in %s", pidList(own))
	}
	if len(inherited) > 0 {
		t.line("  inherited at fork: %d %s, in %s", len(inherited), plural(len(inherited), "copy", "copies"), pidList(inherited))
	}
	t.stack(s.Stack)
}

// siteTargets lists a site's distinct targets: the site's examples first, then any
// other target its leaks name, so "… and K more" counts what was really seen.
func siteTargets(s report.Site, leaks []report.Leak) []string {
	seen := map[string]bool{}
	var out []string
	add := func(tg string) {
		if tg != "" && !seen[tg] {
			seen[tg] = true
			out = append(out, tg)
		}
	}
	for _, tg := range s.Targets {
		add(tg)
	}
	for _, l := range leaks {
		add(l.Target)
	}
	return out
}

// pidList renders "pid 12" or "pids 12, 13, … (5)" for the distinct pids of leaks.
func pidList(leaks []report.Leak) string {
	var pids []int
	for _, l := range leaks {
		pids = append(pids, l.PID)
	}
	slices.Sort(pids)
	pids = slices.Compact(pids)
	txt := make([]string, 0, min(len(pids), maxPIDs))
	for _, p := range pids[:min(len(pids), maxPIDs)] {
		txt = append(txt, strconv.Itoa(p))
	}
	s := plural(len(pids), "pid ", "pids ") + strings.Join(txt, ", ")
	if len(pids) > maxPIDs {
		s += fmt.Sprintf(", … (%d)", len(pids))
	}
	return s
}

func (t *textReport) stack(frames []report.Frame) {
	if len(frames) == 0 {
		t.line("  (no frames)")
		return
	}
	shown := min(len(frames), t.opts.MaxFrames)
	for i, f := range frames[:shown] {
		t.line("  #%d %s", i, frameText(f))
	}
	if k := len(frames) - shown; k > 0 {
		t.line("  … %d more %s", k, plural(k, "frame", "frames"))
	}
}

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
	return b.String()
}

// group prints a titled group of handles that have no site: counts by kind and a
// few examples.
func (t *textReport) group(title string, leaks []report.Leak, examples int, live bool) {
	kinds := map[string]int{}
	for _, l := range leaks {
		kinds[l.Kind]++
	}
	t.w.WriteByte('\n')
	t.line("%s", t.style(ansiBold, fmt.Sprintf("%s: %d %s (%s)", title, len(leaks),
		plural(len(leaks), "handle", "handles"), kindList(kinds, " "))))
	shown := min(len(leaks), examples)
	for _, l := range leaks[:shown] {
		t.line("  %s", handleText(l, live))
	}
	if k := len(leaks) - shown; k > 0 {
		t.line("  … and %d more", k)
	}
}

func (t *textReport) noStack() {
	if leaks := t.bySite[""]; len(leaks) > 0 {
		t.group("no stack", leaks, maxExamples, t.live)
	}
}

func (t *textReport) preexisting() {
	if len(t.r.Preexisting) > 0 {
		t.group("open before attach (not counted)", t.r.Preexisting, maxPreview, false)
	}
}

func (t *textReport) processes() {
	if len(t.r.Processes) < 2 {
		return
	}
	procs := slices.Clone(t.r.Processes)
	slices.SortStableFunc(procs, func(a, b report.Process) int { return cmp.Compare(a.PID, b.PID) })
	t.w.WriteByte('\n')
	t.line("%s", t.style(ansiBold, fmt.Sprintf("processes: %d", len(procs))))
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PID\tPPID\tCOMM\tLEAKED\tEXIT")
	for _, p := range procs {
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
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%d\t%s\n", p.PID, p.PPID, clean(p.Comm), p.Leaked, exit)
	}
	tw.Flush()
}

// tally is what the summary line counts.
type tally struct {
	leaks, sites, procs, inherited int
	kinds                          map[string]int
}

// count tallies the report's leaks. Inherited copies are counted apart, as the
// design has them reported apart. A report that carries only sites (no leak list)
// is tallied from its sites, so the summary never contradicts what was printed.
func count(r *report.Report) tally {
	t := tally{kinds: map[string]int{}}
	if len(r.Leaks) == 0 {
		for _, s := range r.Sites {
			t.leaks += s.Count
			for k, n := range s.Kinds {
				t.kinds[k] += n
			}
		}
		t.sites = len(r.Sites)
		for _, p := range r.Processes {
			if p.Leaked > 0 {
				t.procs++
			}
		}
		return t
	}
	sites, pids := map[string]bool{}, map[int]bool{}
	for _, l := range r.Leaks {
		if l.Inherited {
			t.inherited++
			continue
		}
		t.leaks++
		t.kinds[l.Kind]++
		pids[l.PID] = true
		if l.Site != "" {
			sites[l.Site] = true
		}
	}
	t.sites, t.procs = len(sites), len(pids)
	return t
}

func (t *textReport) summary() {
	r := t.r
	c := count(r)
	var b strings.Builder
	if c.leaks == 0 {
		fmt.Fprintf(&b, "leaktrace: no leaks (%d events, %d lost, %d %s)", r.Events.Received, r.Events.Lost,
			len(r.Processes), plural(len(r.Processes), "process", "processes"))
	} else {
		fmt.Fprintf(&b, "leaktrace: %d leaked %s (%s) in %d %s", c.leaks, plural(c.leaks, "handle", "handles"),
			kindList(c.kinds, " "), c.sites, plural(c.sites, "site", "sites"))
		if c.procs > 0 { // unknown when a sites-only report has no process list
			fmt.Fprintf(&b, " from %d %s", c.procs, plural(c.procs, "process", "processes"))
		}
	}
	if c.inherited > 0 {
		fmt.Fprintf(&b, ", plus %d inherited at fork", c.inherited)
	}
	if !r.Complete {
		b.WriteString(" [INCOMPLETE]")
	}
	line := t.style(ansiBold, b.String())
	if bud := r.Budget; bud != nil {
		verdict := fmt.Sprintf("budget %d: ok (%d leaked)", bud.Limit, bud.Leaked)
		if bud.Exceeded {
			verdict = t.style(ansiRed, fmt.Sprintf("budget %d: exceeded (%d leaked)", bud.Limit, bud.Leaked))
		}
		line += "; " + verdict
	}
	t.w.WriteByte('\n')
	t.line("%s", line)
}
