package exporter

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/leaktrace/leaktrace/report"
)

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
		if s.Key == "" || s.Count == 0 {
			// Stackless leaks are printed as the "no stack" group; a site
			// whose every leak a policy left out, with those leaks.
			continue
		}
		t.w.WriteByte('\n')
		t.site(s)
	}
}

func (t *textReport) site(s report.Site) {
	leaks := t.acc.bySite[s.Key]
	head := leakPhrase(s.Count, s.Kinds) + " from " + headlineText(headline(s))
	if t.live && s.Growth > 0 {
		head += " [growing]"
	}
	t.line("%s", t.style(ansiBold, head))
	if t.live {
		live := fmt.Sprintf("  outstanding %d, growth %s", max(s.Outstanding, s.Count), growthText(s.Growth))
		if len(leaks) > 0 {
			oldest := 0.0
			for _, l := range leaks {
				oldest = max(oldest, l.AgeSeconds)
			}
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
	handed := 0
	for _, l := range own {
		if l.HandedOver {
			handed++
		}
	}
	if handed > 0 {
		t.line("  of which handed over at fork (the parent closed its copy or exited): %d", handed)
	}
	if len(inherited) > 0 {
		// The site's count says whether the session counted the copies.
		counted := "counted"
		if s.Count < len(leaks) {
			counted = "not counted"
		}
		t.line("  inherited at fork (%s): %d %s, in %s", counted, len(inherited),
			plural(len(inherited), "copy", "copies"), pidList(inherited))
	}
	t.stack(s.Stack, s.Headline)
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

// stack prints a site's frames from the one just inside the headline (the
// library call the user's code made) outwards: the syscall wrappers and
// runtime frames below it say nothing the headline does not.
func (t *textReport) stack(frames []report.Frame, headline report.Frame) {
	if len(frames) == 0 {
		t.line("  (no frames)")
		return
	}
	start := 0
	for i, f := range frames {
		if f == headline {
			start = max(0, i-1)
			break
		}
	}
	if start > 0 {
		t.line("  … %d inner %s (syscall wrappers, runtime)", start, plural(start, "frame", "frames"))
	}
	shown := min(len(frames)-start, t.opts.MaxFrames)
	for i, f := range frames[start : start+shown] {
		t.line("  #%d %s", start+i, frameText(f))
	}
	if k := len(frames) - start - shown; k > 0 {
		t.line("  … %d more %s", k, plural(k, "frame", "frames"))
	}
}
