package exporter

import "github.com/leaktrace/leaktrace/report"

// accounting sorts a report's leaks the way the report counts them. r.Leaks lists
// every leaked handle; r.Sites groups the ones that count. Left out of every count
// are a language runtime's own handles (Internal) and, unless the run asked,
// copies a child inherited at fork.
type accounting struct {
	bySite   map[string][]report.Leak // leaks that are not Internal, by site key ("" = no stack)
	internal []report.Leak
	orphans  []report.Leak // not Internal, with a stack, but in no site of r.Sites
	// excluded are the leaks a policy left out (suppressed, baseline, min_age),
	// by report.Leak.NotCounted; they are in no other list here.
	excluded map[string][]report.Leak
	// notCounted counts leaks neither counted nor Internal, by why.
	notCounted map[string]int

	counted   int            // leaks that count: the sum of the sites' counts
	kinds     map[string]int // counted, by kind
	sites     int            // sites with a stack
	procs     int            // processes with counted leaks
	uncounted int            // leaks neither counted nor Internal: inherited copies, and what a policy left out
}

// excludedByPolicy: a leak that would count but for a policy.
func excludedByPolicy(l report.Leak) bool {
	switch l.NotCounted {
	case report.NotCountedSuppressed, report.NotCountedBaseline, report.NotCountedMinAge:
		return true
	}
	return false
}

func account(r *report.Report) accounting {
	a := accounting{bySite: map[string][]report.Leak{}, kinds: map[string]int{},
		excluded: map[string][]report.Leak{}, notCounted: map[string]int{}}
	inSites := map[string]bool{}
	for _, s := range r.Sites {
		inSites[s.Key] = s.Count > 0 // a site a policy emptied holds no listed leak
		a.counted += s.Count
		for k, n := range s.Kinds {
			a.kinds[k] += n
		}
		if s.Key != "" && s.Count > 0 {
			a.sites++
		}
	}
	listed, pids := 0, map[int]bool{}
	for _, l := range r.Leaks {
		if l.Internal {
			a.internal = append(a.internal, l)
			continue
		}
		listed++
		if excludedByPolicy(l) {
			a.excluded[l.NotCounted] = append(a.excluded[l.NotCounted], l)
			a.notCounted[l.NotCounted]++
			continue
		}
		if l.NotCounted == report.NotCountedInherited {
			a.notCounted[l.NotCounted]++
		}
		a.bySite[l.Site] = append(a.bySite[l.Site], l)
		if l.Site != "" && !inSites[l.Site] {
			a.orphans = append(a.orphans, l)
		}
		if !l.Inherited {
			pids[l.PID] = true
		}
	}
	for _, p := range r.Processes {
		if p.Leaked > 0 {
			a.procs++
		}
	}
	if len(r.Sites) == 0 && listed > 0 {
		// No sites at all: a report from another producer. Count what the design
		// counts by default: every listed handle but inherited copies.
		for _, l := range r.Leaks {
			if !l.Internal && !l.Inherited {
				a.counted++
				a.kinds[l.Kind]++
			}
		}
		for key := range a.bySite {
			if key != "" {
				a.sites++
			}
		}
		a.orphans = nil
		if a.procs == 0 {
			a.procs = len(pids)
		}
	}
	a.uncounted = max(listed-a.counted, 0)
	return a
}
