package policy

import (
	"slices"
	"strconv"

	"github.com/leaktrace/leaktrace/report"
)

// judge measures r's counted leaks against b; nil when b sets no limit.
func (b Budget) judge(r *report.Report) *report.Budget {
	if !b.Set() {
		return nil
	}
	v := &report.Budget{Limit: -1}
	if b.HasTotal {
		v.Limit = b.Total
	}
	kinds := map[string]int{}
	for _, s := range r.Sites {
		v.Leaked += s.Count
		for k, n := range s.Kinds {
			kinds[k] += n
		}
	}
	v.Exceeded = b.HasTotal && v.Leaked > b.Total
	names := make([]string, 0, len(b.Kinds))
	for k := range b.Kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		l := report.BudgetLimit{Name: k, Limit: b.Kinds[k], Leaked: kinds[k]}
		l.Exceeded = l.Leaked > l.Limit
		v.Exceeded = v.Exceeded || l.Exceeded
		v.Kinds = append(v.Kinds, l)
	}
	if b.HasMapped {
		l := &report.BudgetBytes{Limit: b.Mapped}
		if r.Mapped != nil {
			l.Bytes = r.Mapped.Bytes
		}
		l.Exceeded = l.Bytes > l.Limit
		v.Exceeded = v.Exceeded || l.Exceeded
		v.Mapped = l
	}
	for _, s := range r.Sites {
		lim, ok := b.siteLimit(s)
		if !ok || s.Count == 0 {
			continue // a site with nothing counted cannot exceed; listing it is noise
		}
		l := report.BudgetLimit{Name: s.Key, Where: where(s.Headline), Limit: lim, Leaked: s.Count, Exceeded: s.Count > lim}
		v.Exceeded = v.Exceeded || l.Exceeded
		v.Sites = append(v.Sites, l)
	}
	return v
}

// siteLimit is the limit on s: the last site:PATTERN that selects it, else
// site=N.
func (b Budget) siteLimit(s report.Site) (int, bool) {
	for i := len(b.Sites) - 1; i >= 0; i-- {
		if selects(b.Sites[i].Pattern, s) {
			return b.Sites[i].Limit, true
		}
	}
	return b.EverySite, b.HasEverySite
}

// selects: pattern is the site's key, or a glob on its headline's function,
// "file:line" or file.
func selects(pattern string, s report.Site) bool {
	if pattern == s.Key {
		return true
	}
	h := s.Headline
	if h == (report.Frame{}) && len(s.Stack) > 0 {
		h = headlineOf(s.Stack)
	}
	return h.Function != "" && match(pattern, h.Function) ||
		h.File != "" && (match(pattern, h.File) || match(pattern, h.File+":"+strconv.Itoa(h.Line)))
}
