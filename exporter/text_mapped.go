package exporter

import (
	"fmt"
	"strings"

	"github.com/leaktrace/leaktrace/report"
)

// maxMappedLines caps the mapped-memory sites printed, and maxMappedStacks
// those printed with their stacks: every program maps (its libraries, its
// allocator), and the fd leaks above are what most reports are read for.
const (
	maxMappedLines  = 5
	maxMappedStacks = 3
)

// mapped prints outstanding mapped memory by site: what run's processes had
// mapped at exit, or what attach's have mapped now. Not leaks: an allocator
// keeps what it mapped for reuse, so this says where memory grew, not that
// it was lost.
func (t *textReport) mapped() {
	m := t.r.Mapped
	if m == nil || m.Bytes == 0 {
		return
	}
	t.w.WriteByte('\n')
	when := "left mapped at exit"
	if t.live {
		when = "mapped now"
	}
	head := fmt.Sprintf("memory %s (mmap, brk; not counted as leaks): %s in %d %s from %d %s",
		when, bytesText(m.Bytes), m.Mappings, plural(m.Mappings, "range", "ranges"), len(m.Sites), plural(len(m.Sites), "site", "sites"))
	t.line("%s", t.style(ansiBold, head))
	shown := min(len(m.Sites), maxMappedLines)
	for i, s := range m.Sites[:shown] {
		where := "(no stack)"
		if s.Key != "" || len(s.Stack) > 0 {
			where = headlineText(mappedHeadline(s))
		}
		line := fmt.Sprintf("%s in %d %s from %s", bytesText(s.Bytes), s.Mappings, plural(s.Mappings, "range", "ranges"), where)
		if t.live && s.GrowthBytes > 0 {
			line += fmt.Sprintf(" [growing: +%s]", bytesText(s.GrowthBytes))
		}
		t.line("%s", line)
		if len(s.Targets) > 0 {
			targets := make([]string, len(s.Targets))
			for i, tg := range s.Targets {
				targets[i] = clean(tg)
			}
			t.line("  %s: %s", plural(len(targets), "target", "targets"), strings.Join(targets, ", "))
		}
		if i < maxMappedStacks {
			t.stack(s.Stack, mappedHeadline(s))
		}
	}
	if k := len(m.Sites) - shown; k > 0 {
		t.line("… and %d more %s", k, plural(k, "site", "sites"))
	}
}

func mappedHeadline(s report.MappedSite) report.Frame {
	if s.Headline == (report.Frame{}) && len(s.Stack) > 0 {
		return s.Stack[0]
	}
	return s.Headline
}

// mappedText is the summary's tail for mapped memory.
func mappedText(m *report.Mapped, live bool) string {
	if m == nil || m.Bytes == 0 {
		return ""
	}
	if live {
		return fmt.Sprintf("; %s mapped", bytesText(m.Bytes))
	}
	return fmt.Sprintf("; %s left mapped", bytesText(m.Bytes))
}

// bytesText renders a size in binary units: "4.0 KiB", "512.0 MiB".
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit && exp < 4; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
