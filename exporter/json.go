package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/leaktrace/leaktrace/report"
)

// MaxReportSize bounds what ReadJSON accepts: far above any real report, low enough
// that a wrong file cannot exhaust memory.
const MaxReportSize = 256 << 20

// schemaPrefix is report.Schema without its version: what every version shares.
const schemaPrefix = "leaktrace.report/v"

// SchemaError is returned by ReadJSON for a document of a major version this build
// cannot read.
type SchemaError struct {
	Schema string
}

func (e *SchemaError) Error() string {
	major := report.Schema[:strings.LastIndexByte(report.Schema, '.')]
	return fmt.Sprintf("unsupported report schema %q (this leaktrace reads %s.x)", e.Schema, major)
}

// WriteJSON writes r as indented JSON (docs/json-schema.md). An empty Schema is
// written as report.Schema, and empty lists as [] rather than null, so consumers can
// index without checks. r itself is not modified.
func WriteJSON(w io.Writer, r *report.Report) error {
	if r == nil {
		return errors.New("writing json report: nil report")
	}
	doc := normalize(r)
	if doc.Schema == "" {
		doc.Schema = report.Schema
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // targets like "<anon>" stay readable
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("writing json report: %w", err)
	}
	return nil
}

// ReadJSON parses a report written by WriteJSON, by this or an earlier or later
// build of the same schema major. Fields it does not know are ignored (a later minor
// adds only fields); a different major is a *SchemaError. The result has the same
// shape WriteJSON guarantees: lists and maps non-nil, optional lists nil when empty.
func ReadJSON(rd io.Reader) (*report.Report, error) {
	return readJSON(rd, MaxReportSize)
}

// readJSON is ReadJSON with the size limit as a parameter, for tests.
func readJSON(rd io.Reader, limit int64) (*report.Report, error) {
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading report: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("reading report: larger than %s, not a leaktrace report", byteSize(limit))
	}
	// The schema is checked before the body, so that a document of another major
	// fails with the version, not with whatever field changed type.
	var head struct {
		Schema *string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("parsing report: %w", describe(err))
	}
	if head.Schema == nil {
		return nil, errors.New(`parsing report: no "schema" field, not a leaktrace report`)
	}
	if err := checkSchema(*head.Schema); err != nil {
		return nil, err
	}
	var r report.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parsing report: %w", describe(err))
	}
	r = normalize(&r)
	// Optional lists come back nil when empty, as omitempty wrote them.
	if len(r.Preexisting) == 0 {
		r.Preexisting = nil
	}
	if len(r.Notes) == 0 {
		r.Notes = nil
	}
	if len(r.Command) == 0 {
		r.Command = nil
	}
	return &r, nil
}

// checkSchema accepts "leaktrace.report/v1" and any minor of it ("…/v1.3").
func checkSchema(s string) error {
	version, ok := strings.CutPrefix(s, schemaPrefix)
	want, _, _ := strings.Cut(strings.TrimPrefix(report.Schema, schemaPrefix), ".")
	major, minor, hasMinor := strings.Cut(version, ".")
	if !ok || major != want || hasMinor && !isDigits(minor) {
		return &SchemaError{Schema: s}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// describe adds the byte offset to JSON errors that carry one.
func describe(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON at byte %d: %w", syn.Offset, err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("at byte %d: %w", typ.Offset, err)
	}
	return err
}

// normalize returns a copy of r whose required lists and maps are non-nil, sharing
// nothing that it changed with r.
func normalize(r *report.Report) report.Report {
	doc := *r
	doc.Leaks = leaksWithStacks(r.Leaks, true)
	doc.Preexisting = leaksWithStacks(r.Preexisting, false)
	doc.Sites = normalSites(r.Sites)
	if r.HeldAtExit != nil {
		h := *r.HeldAtExit
		h.Sites = normalSites(h.Sites)
		h.Kinds = nonNilMap(h.Kinds)
		doc.HeldAtExit = &h
	}
	if r.YoungerThanMinAge != nil {
		y := *r.YoungerThanMinAge
		y.Kinds = nonNilMap(y.Kinds)
		doc.YoungerThanMinAge = &y
	}
	doc.Processes = nonNil(r.Processes)
	return doc
}

// normalSites copies sites with their lists and maps non-nil.
func normalSites(sites []report.Site) []report.Site {
	out := make([]report.Site, len(sites))
	for i, s := range sites {
		s.Stack = nonNil(s.Stack)
		s.Targets = nonNil(s.Targets)
		s.Exes = nonNil(s.Exes)
		s.Kinds = nonNilMap(s.Kinds)
		out[i] = s
	}
	return out
}

func nonNilMap(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

// leaksWithStacks copies leaks giving each a non-nil Stack; a nil list stays nil
// unless required.
func leaksWithStacks(leaks []report.Leak, required bool) []report.Leak {
	if leaks == nil && !required {
		return nil
	}
	out := make([]report.Leak, len(leaks))
	for i, l := range leaks {
		l.Stack = nonNil(l.Stack)
		out[i] = l
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
