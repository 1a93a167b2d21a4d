package exporter

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/pprof/profile"

	"github.com/leaktrace/leaktrace/report"
)

// WritePprof writes the counted leaks as a gzipped pprof profile: one sample per
// site and kind, valued in leaked handles, with the site's stack and labels for
// kind, site key and executables. `go tool pprof -top FILE` ranks the
// functions that leak; -traces shows each stack.
func WritePprof(w io.Writer, r *report.Report) error {
	if r == nil {
		return errors.New("writing pprof profile: nil report")
	}
	p := pprofOf(r)
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("writing pprof profile: %w", err)
	}
	if err := p.Write(w); err != nil {
		return fmt.Errorf("writing pprof profile: %w", err)
	}
	return nil
}

// pprofBuilder interns mappings, functions and locations: pprof wants each once.
type pprofBuilder struct {
	p         *profile.Profile
	mappings  map[string]*profile.Mapping
	functions map[[2]string]*profile.Function
	locations map[report.Frame]*profile.Location
}

func pprofOf(r *report.Report) *profile.Profile {
	b := &pprofBuilder{
		p: &profile.Profile{
			SampleType: []*profile.ValueType{{Type: "leaked_handles", Unit: "count"}},
			PeriodType: &profile.ValueType{Type: "leaked_handles", Unit: "count"},
			Period:     1,
		},
		mappings:  map[string]*profile.Mapping{},
		functions: map[[2]string]*profile.Function{},
		locations: map[report.Frame]*profile.Location{},
	}
	if t, err := time.Parse(time.RFC3339, r.Started); err == nil {
		b.p.TimeNanos = t.UnixNano()
	}
	b.p.DurationNanos = int64(r.Duration * 1e9)
	if len(r.Command) > 0 {
		b.p.Comments = append(b.p.Comments, "leaktrace "+r.Mode+": "+shellJoin(r.Command))
	}
	// pprof takes the first mapping for the main binary ("File:" in its header):
	// let that be the program that leaked most.
	for _, s := range r.Sites {
		if s.Count > 0 && len(s.Exes) > 0 {
			b.mapping(s.Exes[0])
			break
		}
	}
	for _, s := range r.Sites {
		if s.Count == 0 {
			continue
		}
		var locs []*profile.Location
		for _, f := range s.Stack {
			locs = append(locs, b.location(f))
		}
		if len(locs) == 0 {
			// pprof drops samples without a location from most views.
			locs = []*profile.Location{b.location(report.Frame{Function: "[no stack]"})}
		}
		for _, kc := range sortedKinds(s.Kinds) {
			b.p.Sample = append(b.p.Sample, &profile.Sample{
				Location: locs,
				Value:    []int64{int64(kc.n)},
				Label:    map[string][]string{"kind": {kc.kind}, "site": {s.Key}, "exe": slices.Clone(s.Exes)},
			})
		}
	}
	return b.p
}

func (b *pprofBuilder) mapping(module string) *profile.Mapping {
	if m, ok := b.mappings[module]; ok {
		return m
	}
	// The report keeps no mapping ranges; the frames are symbolized already,
	// which HasFunctions tells pprof, so it never looks for the binaries.
	m := &profile.Mapping{ID: uint64(len(b.p.Mapping) + 1), File: module,
		HasFunctions: true, HasFilenames: true, HasLineNumbers: true}
	b.mappings[module] = m
	b.p.Mapping = append(b.p.Mapping, m)
	return m
}

func (b *pprofBuilder) function(name, file string) *profile.Function {
	key := [2]string{name, file}
	if fn, ok := b.functions[key]; ok {
		return fn
	}
	fn := &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: name, SystemName: name, Filename: file}
	b.functions[key] = fn
	b.p.Function = append(b.p.Function, fn)
	return fn
}

func (b *pprofBuilder) location(f report.Frame) *profile.Location {
	if l, ok := b.locations[f]; ok {
		return l
	}
	name := f.Function
	if name == "" {
		// An unsymbolized frame still names where it is.
		name = fmt.Sprintf("%#x", f.Address)
		if m := moduleBase(f.Module); m != "" {
			name += " in " + m
		}
	}
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Address: f.Address, Mapping: b.mapping(f.Module),
		Line: []profile.Line{{Function: b.function(name, f.File), Line: int64(f.Line)}}}
	b.locations[f] = l
	b.p.Location = append(b.p.Location, l)
	return l
}
