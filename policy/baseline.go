package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/report"
)

// BaselineSchema names the document --write-baseline writes.
const BaselineSchema = "leaktrace.baseline/v1"

// Baseline is the leak count of each site in an accepted earlier run. Sites are
// matched by report.Site.Key, which is derived from function and file names, so a
// rebuild of the same code keeps its sites.
type Baseline struct {
	Schema string         `json:"schema"`
	Sites  []BaselineSite `json:"sites"`
}

// BaselineSite is one site of a Baseline.
type BaselineSite struct {
	Key   string         `json:"key"`
	Count int            `json:"count"`
	Where string         `json:"where,omitempty"` // for people: the headline frame
	Kinds map[string]int `json:"kinds,omitempty"`
}

// counts maps site key to count.
func (b *Baseline) counts() map[string]int {
	m := make(map[string]int, len(b.Sites))
	for _, s := range b.Sites {
		m[s.Key] += s.Count
	}
	return m
}

// BaselineOf takes the baseline of a report: each site's leaks that counted or
// were left out only because an earlier baseline held them. Suppressed leaks,
// those under --min-age and uncounted inherited copies stay out of it.
func BaselineOf(r *report.Report) *Baseline {
	b := &Baseline{Schema: BaselineSchema, Sites: []BaselineSite{}}
	idx := map[string]int{}
	for _, s := range r.Sites {
		idx[s.Key] = len(b.Sites)
		b.Sites = append(b.Sites, BaselineSite{Key: s.Key, Where: where(s.Headline), Kinds: map[string]int{}})
	}
	if legacy(r) {
		for i, s := range r.Sites {
			b.Sites[i].Count = s.Count
			for k, n := range s.Kinds {
				b.Sites[i].Kinds[k] = n
			}
		}
	} else {
		for _, l := range r.Leaks {
			i, ok := idx[l.Site]
			if !ok || !l.Counted && l.NotCounted != report.NotCountedBaseline {
				continue
			}
			b.Sites[i].Count++
			b.Sites[i].Kinds[l.Kind]++
		}
	}
	kept := b.Sites[:0]
	for _, s := range b.Sites {
		if s.Count > 0 {
			kept = append(kept, s)
		}
	}
	b.Sites = kept
	sort.Slice(b.Sites, func(i, j int) bool { return b.Sites[i].Key < b.Sites[j].Key })
	return b
}

// legacy reports whether r predates Leak.Counted: then only its sites' counts
// say what counted.
func legacy(r *report.Report) bool {
	for _, l := range r.Leaks {
		if l.Counted || l.NotCounted != "" {
			return false
		}
	}
	return true
}

// WriteBaseline writes b as indented JSON.
func WriteBaseline(w io.Writer, b *Baseline) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return fmt.Errorf("writing baseline: %w", err)
	}
	return nil
}

// maxBaselineSize bounds what ReadBaseline accepts, as exporter.MaxReportSize
// bounds a report.
const maxBaselineSize = exporter.MaxReportSize

// ReadBaseline reads a file written by --write-baseline, or a JSON report
// (--json) whose sites become the baseline.
func ReadBaseline(rd io.Reader) (*Baseline, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxBaselineSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading baseline: %w", err)
	}
	if len(data) > maxBaselineSize {
		return nil, errors.New("reading baseline: too large, not a leaktrace baseline or report")
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("parsing baseline: %w (want a --write-baseline file or a --json report)", err)
	}
	switch {
	case head.Schema == BaselineSchema:
		var b Baseline
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("parsing baseline: %w", err)
		}
		for _, s := range b.Sites {
			if s.Count < 0 {
				return nil, fmt.Errorf("parsing baseline: site %q has a negative count", s.Key)
			}
		}
		if b.Sites == nil {
			b.Sites = []BaselineSite{}
		}
		return &b, nil
	case strings.HasPrefix(head.Schema, "leaktrace.report/"):
		r, err := exporter.ReadJSON(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return BaselineOf(r), nil
	}
	return nil, fmt.Errorf("parsing baseline: schema %q is neither %s nor a leaktrace report", head.Schema, BaselineSchema)
}

// where renders a headline frame as "function (file:line)".
func where(f report.Frame) string {
	switch {
	case f.Function != "" && f.File != "":
		return fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line)
	case f.Function != "":
		return f.Function
	case f.Address != 0:
		return fmt.Sprintf("%#x in %s", f.Address, f.Module)
	}
	return ""
}
