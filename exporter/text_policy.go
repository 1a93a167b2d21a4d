package exporter

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/leaktrace/leaktrace/report"
)

// policyGroups are the groups of leaks a policy left out, in the order the text
// report prints them, with their titles and summary words.
var policyGroups = []struct{ reason, title, words string }{
	{report.NotCountedSuppressed, "suppressed (not counted)", "suppressed"},
	{report.NotCountedBaseline, "in the baseline (not counted)", "in the baseline"},
	{report.NotCountedMinAge, "younger than --min-age at exit (not counted)", "younger than --min-age"},
}

// excluded prints the leaks a policy left out, and for suppressions which
// rules matched: a stale rule is as worth knowing as a missing one.
func (t *textReport) excluded() {
	for _, g := range policyGroups {
		leaks := t.acc.excluded[g.reason]
		if len(leaks) == 0 {
			continue
		}
		t.group(g.title, leaks, maxExamples, t.live, true)
		if g.reason != report.NotCountedSuppressed {
			continue
		}
		rules := map[string]int{}
		for _, l := range leaks {
			rules[l.SuppressedBy]++
		}
		for _, kc := range sortedKinds(rules) {
			t.line("  %d by %s", kc.n, clean(kc.kind))
		}
	}
}

// notCountedText says why leaks were not counted: "inherited at fork", or
// "1 inherited at fork, 3 suppressed".
func notCountedText(c accounting) string {
	if len(c.notCounted) == 0 || len(c.notCounted) == 1 && c.notCounted[report.NotCountedInherited] > 0 {
		return "inherited at fork"
	}
	var parts []string
	if n := c.notCounted[report.NotCountedInherited]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d inherited at fork", n))
	}
	for _, g := range policyGroups {
		if n := c.notCounted[g.reason]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, g.words))
		}
	}
	return strings.Join(parts, ", ")
}

// budgetText renders the verdict of every limit: "budget 4: exceeded (5
// leaked)", and per kind and per site "socket=0: exceeded (3 leaked)". Sites
// within their limit are left out: there can be hundreds.
func (t *textReport) budgetText(b *report.Budget) string {
	if b.Incomplete {
		return t.style(ansiRed, fmt.Sprintf("budget: not judged, the report is incomplete (%d events lost; raise --ring-buffer-size, or --allow-incomplete to judge it anyway)", t.r.Events.Lost))
	}
	verdict := func(name string, limit, leaked int, exceeded bool) string {
		if exceeded {
			return t.style(ansiRed, fmt.Sprintf("%s: exceeded (%d leaked)", name, leaked))
		}
		return fmt.Sprintf("%s: ok (%d leaked)", name, leaked)
	}
	var parts []string
	if b.Limit >= 0 {
		parts = append(parts, verdict(fmt.Sprintf("budget %d", b.Limit), b.Limit, b.Leaked, b.Exceeded && b.Leaked > b.Limit))
	}
	for i, k := range b.Kinds {
		name := fmt.Sprintf("%s=%d", clean(k.Name), k.Limit)
		if i == 0 && b.Limit < 0 {
			name = "budget " + name
		}
		parts = append(parts, verdict(name, k.Limit, k.Leaked, k.Exceeded))
	}
	within := 0
	for _, s := range b.Sites {
		if !s.Exceeded {
			within++
			continue
		}
		name := s.Where
		if name == "" {
			name = s.Name
		}
		parts = append(parts, verdict(fmt.Sprintf("site %s=%d", clean(name), s.Limit), s.Limit, s.Leaked, true))
	}
	if within > 0 {
		parts = append(parts, fmt.Sprintf("%d %s within the site limit", within, plural(within, "site", "sites")))
	}
	if m := b.Mapped; m != nil {
		v := fmt.Sprintf("mapped=%s: ok (%s mapped)", bytesText(m.Limit), bytesText(m.Bytes))
		if m.Exceeded {
			v = t.style(ansiRed, fmt.Sprintf("mapped=%s: exceeded (%s mapped)", bytesText(m.Limit), bytesText(m.Bytes)))
		}
		parts = append(parts, v)
	}
	if len(parts) == 0 {
		return "budget: ok"
	}
	if !strings.HasPrefix(parts[0], "budget") && !strings.HasPrefix(parts[0], ansiRed+"budget") {
		parts[0] = "budget " + parts[0]
	}
	return strings.Join(parts, ", ")
}

// executables prints the per-executable summary when more than one program ran:
// under a test runner, which program leaked matters more than which pid.
func (t *textReport) executables() {
	exes := t.r.Executables
	if len(exes) < 2 {
		return
	}
	t.w.WriteByte('\n')
	t.line("%s", t.style(ansiBold, fmt.Sprintf("executables: %d", len(exes))))
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  LEAKED\tSITES\tPROCS\tKINDS\tEXE")
	shown := exes[:min(len(exes), maxProcesses)]
	for _, e := range shown {
		kinds := kindList(e.Kinds, " ")
		if kinds == "" {
			kinds = "-"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%s\t%s\n", e.Leaked, e.Sites, e.Processes, kinds, clean(e.Exe))
	}
	tw.Flush()
	if k := len(exes) - len(shown); k > 0 {
		rest := slices.Clone(exes[len(shown):])
		leaked := 0
		for _, e := range rest {
			leaked += e.Leaked
		}
		t.line("  … and %d more (%d leaked)", k, leaked)
	}
}
