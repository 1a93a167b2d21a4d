package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// target is a figure's goal: text for the table, ok to judge a value.
type target struct {
	text string
	ok   func(v float64) bool
}

// The goals of issue 6; the table shows each next to its figure.
var (
	targetRatio     = target{"≤ 1.3x", func(v float64) bool { return v <= 1.3 }}
	targetSlowdown  = target{"≤ 1 %", func(v float64) bool { return v <= 1 }}
	targetRate      = target{"≥ 2 M/s", func(v float64) bool { return v >= 2e6 }}
	targetNoAllocs  = target{"0", func(v float64) bool { return v == 0 }}
	targetPerHandle = target{"≤ 256 B", func(v float64) bool { return v <= 256 }}
	targetNoLoss    = target{"0", func(v float64) bool { return v == 0 }}
	targetReady     = target{"< 300 ms", func(v float64) bool { return v < 0.3 }}
)

// row is one line of the table. Value in Unit is what the target judges;
// Result is how the table shows it, with the detail that explains it.
type row struct {
	// Section, when set, makes the row a heading over the rows after it.
	Section string  `json:"section,omitempty"`
	Measure string  `json:"measure,omitempty"`
	Result  string  `json:"result"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit,omitempty"`
	Target  string  `json:"target,omitempty"`
	Met     *bool   `json:"met,omitempty"`
	Skipped string  `json:"skipped,omitempty"`
}

// results is what a run measured, as the table and the JSON file carry it.
type results struct {
	Date    string   `json:"date"`
	Kernel  string   `json:"kernel"`
	CPUs    int      `json:"cpus"`
	VM      bool     `json:"vm"`
	Smoke   bool     `json:"smoke"`
	Command string   `json:"command"`
	Rows    []row    `json:"rows"`
	Notes   []string `json:"notes,omitempty"`
	// Samples are every timing taken, in seconds, by measurement.
	Samples map[string][]float64 `json:"samples"`
	// Breakdown is the cost breakdown's figures in full, per configuration.
	Breakdown []breakdownJSON `json:"breakdown,omitempty"`
}

func (r *results) add(measure string, value float64, unit, result string, t *target) {
	rw := row{Measure: measure, Value: value, Unit: unit, Result: result}
	if t != nil {
		met := t.ok(value)
		rw.Target, rw.Met = t.text, &met
	}
	r.Rows = append(r.Rows, rw)
}

// section starts a group of rows under a heading.
func (r *results) section(title string) {
	r.Rows = append(r.Rows, row{Section: title})
}

func (r *results) skip(measure, why string, t *target) {
	rw := row{Measure: measure, Result: "skipped: " + why, Skipped: why}
	if t != nil {
		rw.Target = t.text
	}
	r.Rows = append(r.Rows, rw)
}

func (r *results) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// writeMarkdown prints the table exactly as the README's Performance section
// carries it, so that a new run is pasted over the old one.
func (r *results) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	machine := fmt.Sprintf("%d-core", r.CPUs)
	if r.VM {
		machine += " VM"
	} else {
		machine += " machine"
	}
	fmt.Fprintf(&b, "Measured %s with `%s` on a %s, Linux %s.", r.Date, r.Command, machine, r.Kernel)
	if r.Smoke {
		b.WriteString(" Smoke run: reduced sizes, one repetition; not for comparison.")
	}
	b.WriteString("\n\n| measure | result | target | |\n| --- | --- | --- | --- |\n")
	for _, rw := range r.Rows {
		if rw.Section != "" {
			fmt.Fprintf(&b, "| **%s** | | | |\n", cell(rw.Section))
			continue
		}
		verdict := ""
		switch {
		case rw.Skipped != "":
			verdict = "skipped"
		case rw.Met == nil:
		case *rw.Met:
			verdict = "met"
		default:
			verdict = "**not met**"
		}
		tgt := rw.Target
		if tgt == "" {
			tgt = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(rw.Measure), cell(rw.Result), cell(tgt), verdict)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell keeps a value from breaking the table's columns.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func (r *results) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the results directory: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// count formats n with thousands separators, as the table's sizes read best.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + count(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// perSec is rate without its unit, for "… events/s".
func perSec(v float64) string { return strings.TrimSpace(strings.TrimSuffix(rate(v), "/s")) }

// rate formats an events-per-second figure.
func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1f M/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f k/s", v/1e3)
	}
	return fmt.Sprintf("%.0f /s", v)
}
