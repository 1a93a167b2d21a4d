// Package policy decides which leaks of a report count, and whether they fit
// the budget: --count-inherited, --min-age, suppression files, a baseline of
// accepted sites, and per-total, per-kind and per-site limits. It is pure Go
// and works on a *report.Report, fresh from a run or read back from JSON.
package policy

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

// Policy is what decides which leaks count.
type Policy struct {
	CountInherited bool
	// MinAge leaves out leaks younger than it when they became leaks: in run,
	// handles opened within MinAge of their process's exit, which a finalizer or
	// an exit path would have closed had the process lived on.
	MinAge time.Duration
	// Suppressions, and the files they came from (recorded in the report).
	Suppressions     *Suppressions
	SuppressionFiles []string
	// Baseline, and the file it came from.
	Baseline     *Baseline
	BaselineFile string
	Budget       Budget
	// AllowIncomplete judges the budget of a report that lost events on its
	// counts; without it such a verdict is "incomplete", never "ok".
	AllowIncomplete bool
}

// maxExamples is how many targets and exes a site lists, as the session does.
const maxExamples = 5

// Apply decides for every leak of r whether it counts, and why not; rebuilds
// r's sites, the processes' leak counts and the per-executable summary from
// that; and judges the budget (r.Budget is nil when no limit is set). Applying
// a policy to a report that was judged before replaces that judgement: every
// decision is made again from the leaks themselves.
func (p *Policy) Apply(r *report.Report) {
	var base map[string]int
	if p.Baseline != nil {
		base = p.Baseline.counts()
	}
	// In the baseline, the first leaks of a site in report order are the old
	// ones: which ones does not matter, only how many are left over.
	used := map[string]int{}
	for i := range r.Leaks {
		l := &r.Leaks[i]
		l.Counted, l.NotCounted, l.SuppressedBy = false, "", ""
		switch {
		case l.Internal:
			l.NotCounted = report.NotCountedInternal
		case l.Inherited && !p.CountInherited:
			l.NotCounted = report.NotCountedInherited
		case p.MinAge > 0 && l.AgeSeconds < p.MinAge.Seconds():
			l.NotCounted = report.NotCountedMinAge
		default:
			if by := p.Suppressions.Match(l); by != "" {
				l.NotCounted, l.SuppressedBy = report.NotCountedSuppressed, by
			} else if base != nil && used[l.Site] < base[l.Site] {
				used[l.Site]++
				l.NotCounted = report.NotCountedBaseline
			} else {
				l.Counted = true
			}
		}
	}
	r.Sites = rebuildSites(r, base)
	countProcesses(r)
	r.Budget = p.Budget.judge(r)
	if r.Budget != nil && !r.Complete && !p.AllowIncomplete {
		r.Budget.Incomplete = true
	}
	r.Policy = &report.Policy{CountInherited: p.CountInherited, MinAge: p.MinAge.Seconds(),
		Baseline: p.BaselineFile, Suppressions: slices.Clone(p.SuppressionFiles)}
}

// eligible: a leak that counts unless a policy leaves it out.
func eligible(l *report.Leak) bool {
	return l.NotCounted != report.NotCountedInternal && l.NotCounted != report.NotCountedInherited
}

// rebuildSites counts every site anew. A site whose leaks a policy all left out
// stays, with Count 0 and its Uncounted, so that the next judgement still has
// its headline.
func rebuildSites(r *report.Report, base map[string]int) []report.Site {
	old := map[string]report.Site{}
	for _, s := range r.Sites {
		old[s.Key] = s
	}
	sites := map[string]*report.Site{}
	var order []string
	for i := range r.Leaks {
		l := &r.Leaks[i]
		if !eligible(l) {
			continue
		}
		s := sites[l.Site]
		if s == nil {
			o, ok := old[l.Site]
			if !ok {
				o = report.Site{Key: l.Site, Stack: l.Stack, Headline: headlineOf(l.Stack)}
			}
			s = &report.Site{Key: o.Key, Headline: o.Headline, Stack: o.Stack, Growth: o.Growth,
				Outstanding: o.Outstanding, Kinds: map[string]int{}, Targets: []string{}, Exes: []string{}}
			sites[l.Site] = s
			order = append(order, l.Site)
		}
		if l.Counted {
			s.Count++
			s.Kinds[l.Kind]++
		} else {
			s.Uncounted++
		}
		report.AddExample(&s.Targets, l.Target, maxExamples)
		report.AddExample(&s.Exes, l.Executable(), maxExamples)
	}
	out := make([]report.Site, 0, len(order))
	for _, key := range order {
		s := sites[key]
		if base != nil {
			b, ok := base[key]
			s.BaselineCount = b
			switch {
			case !ok:
				s.BaselineState = "new"
			case s.Count > 0:
				s.BaselineState = "grew"
			default:
				s.BaselineState = "unchanged"
			}
		}
		out = append(out, *s)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(b.Uncounted, a.Uncounted), cmp.Compare(a.Key, b.Key)) < 0
	})
	return out
}

// headlineOf names a stack that came with no site: its first frame with a
// function and a source file, else its first frame.
func headlineOf(stack []report.Frame) report.Frame {
	for _, f := range stack {
		if f.Function != "" && f.File != "" {
			return f
		}
	}
	if len(stack) > 0 {
		return stack[0]
	}
	return report.Frame{}
}

// countProcesses sets each process's Leaked and groups processes by executable.
func countProcesses(r *report.Report) {
	byPID := map[int]int{}
	type exeAcc struct {
		report.Executable
		sites map[string]bool
	}
	exes := map[string]*exeAcc{}
	exe := func(name string) *exeAcc {
		e := exes[name]
		if e == nil {
			e = &exeAcc{Executable: report.Executable{Exe: name, Kinds: map[string]int{}}, sites: map[string]bool{}}
			exes[name] = e
		}
		return e
	}
	for i := range r.Leaks {
		l := &r.Leaks[i]
		if !l.Counted {
			continue
		}
		byPID[l.PID]++
		e := exe(l.Executable())
		e.Leaked++
		e.Kinds[l.Kind]++
		if l.Site != "" { // as in the text summary: sites with a stack
			e.sites[l.Site] = true
		}
	}
	for i := range r.Processes {
		p := &r.Processes[i]
		p.Leaked = byPID[p.PID]
		name := p.Exe
		if name == "" {
			name = p.Comm
		}
		exe(name).Processes++
	}
	r.Executables = nil
	for _, e := range exes {
		e.Sites = len(e.sites)
		r.Executables = append(r.Executables, e.Executable)
	}
	slices.SortFunc(r.Executables, func(a, b report.Executable) int {
		return cmp.Or(cmp.Compare(b.Leaked, a.Leaked), cmp.Compare(b.Processes, a.Processes), cmp.Compare(a.Exe, b.Exe))
	})
}
