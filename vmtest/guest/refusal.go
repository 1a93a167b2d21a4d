package main

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	programName = regexp.MustCompile(`program (\w+)`)
	processed   = regexp.MustCompile(`^\s*processed (\d+) insns`)
	// Verifier log lines that close every log and say nothing of the cause.
	verifierTail = regexp.MustCompile(`^\s*(processed \d+ insns|verification time|stack depth|\(\d+ line\(s\) omitted\)|Run with -v|$)`)
)

// summarize makes one line of leaktrace's stderr for the table: its first line
// and, for a refused BPF program, the program, the verifier's last word on it
// and how much it processed, so that a refusal is never hidden in a log.
func summarize(stderr string) string {
	lines := nonEmptyLines(stderr)
	if len(lines) == 0 {
		return "nothing on stderr"
	}
	s := clip(strings.TrimSpace(lines[0]), 240)
	if len(lines) == 1 {
		return s
	}
	var extra []string
	if m := programName.FindStringSubmatch(stderr); m != nil && !strings.Contains(s, m[0]) {
		extra = append(extra, m[0])
	}
	if r := verifierReason(lines[1:]); r != "" && !strings.Contains(s, r) {
		extra = append(extra, "verifier: "+clip(r, 200))
	}
	for _, l := range lines {
		if m := processed.FindStringSubmatch(l); m != nil {
			extra = append(extra, "processed "+m[1]+" insns")
			break
		}
	}
	if len(extra) > 0 {
		s += " [" + strings.Join(extra, "; ") + "]"
	}
	return fmt.Sprintf("%s (%d lines on stderr)", s, len(lines))
}

// verifierReason is the last line of a verifier log that is not its closing
// statistics: where the verifier gave up.
func verifierReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if !verifierTail.MatchString(lines[i]) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
