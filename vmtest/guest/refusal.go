//go:build linux

package main

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	// Where a refused program names itself: cilium/ebpf's error, the
	// verifier log's source line of the program, or its complaint.
	programName = []*regexp.Regexp{
		regexp.MustCompile(`program (\w+):`),
		regexp.MustCompile(`BPF_PROG\((\w+)`),
		regexp.MustCompile(`func '(\w+)'`),
	}
	loadErrno = regexp.MustCompile(`load program: ([a-z ]+)`)
	processed = regexp.MustCompile(`^\s*processed (\d+) insns`)
	// Verifier log lines that are not a reason: the closing statistics, the
	// instructions and source lines walked, register states.
	notReason = regexp.MustCompile(`^\s*(processed \d+ insns|verification time|stack depth|\(\d+ line\(s\) omitted\)|\d+: |; |R\d+|from \d+ to \d+|$)`)
)

// summarize makes one line of leaktrace's stderr for the table. A refused
// BPF program becomes "program P refused (errno): the verifier's last words
// [processed N insns]", so that a refusal is never hidden in a log; any other
// failure is its first line.
func summarize(stderr string) string {
	lines := nonEmptyLines(stderr)
	if len(lines) == 0 {
		return "nothing on stderr"
	}
	first := strings.TrimSpace(lines[0])
	errno := loadErrno.FindStringSubmatch(stderr)
	if errno == nil {
		if len(lines) == 1 {
			return clip(first, 300)
		}
		return fmt.Sprintf("%s [%d lines on stderr]", clip(first, 300), len(lines))
	}
	prog := "a program"
	for _, re := range programName {
		if m := re.FindStringSubmatch(stderr); m != nil {
			prog = "program " + m[1]
			break
		}
	}
	s := fmt.Sprintf("%s refused (%s)", prog, strings.TrimSpace(errno[1]))
	if r := verifierReason(lines); r != "" {
		s += ": " + clip(r, 300)
	}
	var notes []string
	for _, l := range lines {
		if m := processed.FindStringSubmatch(l); m != nil {
			notes = append(notes, "processed "+m[1]+" insns")
			break
		}
	}
	notes = append(notes, fmt.Sprintf("%d lines on stderr", len(lines)))
	return s + " [" + strings.Join(notes, "; ") + "]"
}

// verifierReason is where the verifier gave up: the last two lines of its log
// that are neither statistics, instructions nor register states. A
// refusal without a log has its reason after the errno on the first line.
func verifierReason(lines []string) string {
	var r []string
	for i := len(lines) - 1; i > 0 && len(r) < 2; i-- {
		if !notReason.MatchString(lines[i]) {
			r = append([]string{strings.TrimSpace(lines[i])}, r...)
		}
	}
	if len(r) == 0 {
		if _, after, ok := strings.Cut(lines[0], "load program: "); ok {
			if _, reason, ok := strings.Cut(after, ": "); ok {
				return strings.TrimSpace(reason)
			}
		}
	}
	return strings.Join(r, " / ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
