package exporter

import (
	"fmt"

	"github.com/leaktrace/leaktrace/report"
)

// maxHeldLines caps the sites listed under "held at exit".
const maxHeldLines = 5

// heldAtExit prints what exited processes held (attach, agent): released by
// the kernel at their exit, so apart from the leaks.
func (t *textReport) heldAtExit() {
	h := t.r.HeldAtExit
	if h == nil || h.Handles == 0 {
		return
	}
	t.w.WriteByte('\n')
	head := fmt.Sprintf("held at exit (not counted: the kernel released them): %d %s (%s) in %d exited %s",
		h.Handles, plural(h.Handles, "handle", "handles"), kindList(h.Kinds, " "), h.Processes, plural(h.Processes, "process", "processes"))
	if h.Inherited > 0 {
		head += fmt.Sprintf(", %d inherited at fork", h.Inherited)
	}
	t.line("%s", t.style(ansiBold, head))
	shown := min(len(h.Sites), maxHeldLines)
	for _, s := range h.Sites[:shown] {
		where := "(no stack)"
		if s.Key != "" || len(s.Stack) > 0 {
			where = headlineText(headline(s))
		}
		t.line("  %d %s (%s) from %s", s.Count, plural(s.Count, "handle", "handles"), kindList(s.Kinds, " "), where)
	}
	if k := len(h.Sites) - shown; k > 0 {
		t.line("  … and %d more %s", k, plural(k, "site", "sites"))
	}
}

// young prints what min-age has not judged yet (attach, agent).
func (t *textReport) young() {
	y := t.r.YoungerThanMinAge
	if y == nil || y.Handles == 0 {
		return
	}
	t.w.WriteByte('\n')
	t.line("%s", t.style(ansiBold, fmt.Sprintf("not judged yet: %d %s (%s) younger than --min-age %s; attach longer or lower --min-age",
		y.Handles, plural(y.Handles, "handle", "handles"), kindList(y.Kinds, " "), seconds(y.MinAgeSeconds))))
}

// notJudgedText is the summary's tail for what min-age has not judged yet.
func notJudgedText(y *report.Young) string {
	if y == nil || y.Handles == 0 {
		return ""
	}
	return fmt.Sprintf("; %d not judged (younger than --min-age %s)", y.Handles, seconds(y.MinAgeSeconds))
}
