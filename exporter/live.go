package exporter

import (
	"cmp"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

// LiveView is one frame of the attach screen.
type LiveView struct {
	PID      int
	Comm     string
	Elapsed  time.Duration
	Received uint64 // events received so far
	Lost     uint64 // events lost so far: the view is incomplete when > 0
	Open     int    // handles the target holds now
	// MinAge is attach's --min-age: a site's handles count as OLD (and their
	// kinds are listed) once open longer than it.
	MinAge time.Duration
	Sites  []report.Site
	// Held are the sites of what exited processes held at exit, Count each
	// (report.HeldAtExit.Sites); when any, the table has an AT EXIT column.
	Held []report.Site
	// HeldHandles and Young are report.HeldAtExit.Handles and
	// report.YoungerThanMinAge.Handles, for the header.
	HeldHandles, Young int
	// Mapped is the memory the target mapped since attach and still maps
	// (report.Mapped.Bytes), and MappedGrowth how much of it its sites grew.
	Mapped, MappedGrowth uint64
	// Color highlights lost events in red; off under NO_COLOR.
	Color bool
	// Width and Height are the terminal's size in columns and rows; 0 means 80×24.
	Width, Height int
}

// clearHome moves the cursor home and clears the screen, so each frame repaints.
const clearHome = "\x1b[H\x1b[2J"

const (
	liveOpenWidth   = 5
	liveOldWidth    = 5
	liveGrowthWidth = 6
	liveHeldWidth   = 7
	liveKindsWidth  = 16
)

// WriteLive renders one frame of the attach screen: a header line, then the top
// sites that fit. Every line fits Width, and the frame uses at most Height-1 lines,
// so the cursor's row never scrolls the header away.
func WriteLive(w io.Writer, v LiveView) error {
	width, height := v.Width, v.Height
	if width <= 0 {
		width = 80
	}
	if height <= 0 {
		height = 24
	}
	var b strings.Builder
	b.WriteString(clearHome)
	b.WriteString(liveHeader(v, width))
	b.WriteByte('\n')
	rows := height - 1 - 3 // the cursor's row, the header, the legend, the column titles
	if rows > 0 {
		legend := fmt.Sprintf("OPEN now; OLD: open over --min-age %s; KINDS of the OLD; GROWTH of OPEN since attach", v.MinAge)
		if len(v.Held) > 0 {
			legend += "; AT EXIT: held by exited processes"
		}
		b.WriteString(truncate(legend, width))
		b.WriteByte('\n')
		writeLiveTable(&b, v, width, rows)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing live view: %w", err)
	}
	return nil
}

// liveSegment is one part of the header; the least important are dropped first
// when the terminal is narrow.
type liveSegment struct {
	text      string
	priority  int // lower is kept longer
	highlight bool
}

func liveHeader(v LiveView, width int) string {
	target := "pid " + strconv.Itoa(v.PID)
	if v.Comm != "" {
		target += " (" + clean(v.Comm) + ")"
	}
	segs := []liveSegment{
		{text: "leaktrace attach", priority: 6},
		{text: target, priority: 0},
		{text: roundDuration(v.Elapsed).String(), priority: 4},
		{text: "open " + strconv.Itoa(v.Open), priority: 2},
		{text: fmt.Sprintf("events %d", v.Received), priority: 5},
	}
	if v.Lost > 0 {
		segs = append(segs, liveSegment{text: fmt.Sprintf("LOST %d, incomplete", v.Lost), priority: 1, highlight: true})
	} else {
		segs = append(segs, liveSegment{text: "lost 0", priority: 3})
	}
	if v.Mapped > 0 {
		m := "mapped " + bytesText(v.Mapped)
		if v.MappedGrowth > 0 {
			m += " (+" + bytesText(v.MappedGrowth) + ")"
		}
		segs = append(segs, liveSegment{text: m, priority: 5})
	}
	if v.Young > 0 {
		segs = append(segs, liveSegment{text: fmt.Sprintf("young %d", v.Young), priority: 7})
	}
	if v.HeldHandles > 0 {
		segs = append(segs, liveSegment{text: fmt.Sprintf("held at exit %d", v.HeldHandles), priority: 8})
	}
	for {
		plain := make([]string, len(segs))
		for i, s := range segs {
			plain[i] = s.text
		}
		if runeLen(strings.Join(plain, "  ")) <= width || len(segs) == 1 {
			break
		}
		worst := 0
		for i, s := range segs {
			if s.priority > segs[worst].priority {
				worst = i
			}
		}
		segs = slices.Delete(segs, worst, worst+1)
	}
	if len(segs) == 1 {
		return truncate(segs[0].text, width)
	}
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = s.text
		if s.highlight && v.Color {
			parts[i] = ansiRed + s.text + ansiReset
		}
	}
	return strings.Join(parts, "  ")
}

// rankLive orders the live table: growing sites first, fastest first, then by how
// many handles are outstanding.
func rankLive(sites []report.Site) []report.Site {
	out := slices.Clone(sites)
	slices.SortStableFunc(out, func(a, b report.Site) int {
		if c := cmp.Compare(growing(b), growing(a)); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(b.Growth, a.Growth), cmp.Compare(outstanding(b), outstanding(a)),
			cmp.Compare(a.Key, b.Key))
	})
	return out
}

// outstanding is a site's open handles; a site can't hold fewer than it reports as
// leaked, whatever the producer filled in.
func outstanding(s report.Site) int { return max(s.Outstanding, s.Count) }

// liveRow is one row of the live table: a site with outstanding handles, what
// exited processes held from it, or both.
type liveRow struct {
	site report.Site
	held int
	live bool // the site is in Sites: OPEN and GROWTH apply
}

// liveRows ranks the sites, then appends the sites only exited processes held
// handles from, most first.
func liveRows(sites, held []report.Site) []liveRow {
	byKey := make(map[string]int, len(held))
	for _, h := range held {
		byKey[h.Key] += h.Count
	}
	var rows []liveRow
	for _, s := range rankLive(sites) {
		rows = append(rows, liveRow{site: s, held: byKey[s.Key], live: true})
		delete(byKey, s.Key)
	}
	rest := slices.Clone(held)
	slices.SortStableFunc(rest, func(a, b report.Site) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key)) })
	for _, h := range rest {
		if _, ok := byKey[h.Key]; ok {
			rows = append(rows, liveRow{site: h, held: h.Count})
			delete(byKey, h.Key)
		}
	}
	return rows
}

func writeLiveTable(b *strings.Builder, v LiveView, width, rows int) {
	sites, held := v.Sites, v.Held
	withHeld := len(held) > 0
	row := func(open, old, growth, atExit, kinds, site string) {
		line := fmt.Sprintf("%*s  %*s  %*s  ", liveOpenWidth, open, liveOldWidth, old, liveGrowthWidth, growth)
		if withHeld {
			line += fmt.Sprintf("%*s  ", liveHeldWidth, atExit)
		}
		line += pad(kinds, liveKindsWidth) + "  " + site
		b.WriteString(truncate(strings.TrimRight(line, " "), width))
		b.WriteByte('\n')
	}
	row("OPEN", "OLD", "GROWTH", "AT EXIT", "KINDS", "SITE")
	if len(sites) == 0 && !withHeld {
		msg := "  no handles open with a stack yet"
		if v.Open > 0 {
			msg = fmt.Sprintf("  %d open, none for longer than --min-age %s yet", v.Open, v.MinAge)
		}
		b.WriteString(truncate(msg, width))
		b.WriteByte('\n')
		return
	}
	siteWidth := width - (liveOpenWidth + 2 + liveOldWidth + 2 + liveGrowthWidth + 2 + liveKindsWidth + 2)
	if withHeld {
		siteWidth -= liveHeldWidth + 2
	}
	ranked := liveRows(sites, held)
	shown := len(ranked)
	if shown > rows {
		shown = rows - 1 // leave a row to say how many did not fit
	}
	for _, r := range ranked[:shown] {
		s := r.site
		kinds := kindList(s.Kinds, ",")
		where := "(no stack)"
		if s.Key != "" || len(s.Stack) > 0 {
			where = liveSite(headline(s), siteWidth)
		}
		open, old, growth, atExit := "-", "-", "-", "-"
		if r.live {
			open, old, growth = strconv.Itoa(outstanding(s)), strconv.Itoa(s.Count), growthText(s.Growth)
		}
		if r.held > 0 {
			atExit = strconv.Itoa(r.held)
		}
		row(open, old, growth, atExit, truncate(kinds, liveKindsWidth), where)
	}
	if k := len(ranked) - shown; k > 0 {
		b.WriteString(truncate(fmt.Sprintf("  … %d more %s", k, plural(k, "site", "sites")), width))
		b.WriteByte('\n')
	}
}

// liveSite renders "function file:line" in n columns, giving up detail in steps
// while it does not fit: the file's directory, then the function's package path
// (github.com/x/y/pkg.F → pkg.F), then the function's tail: file:line is what
// the user acts on, so it goes last.
func liveSite(f report.Frame, n int) string {
	n = max(n, 0)
	if f.Function == "" {
		return truncate(headlineText(f), n)
	}
	short := f
	short.File = path.Base(f.File)
	fn := clean(f.Function)
	shortFn := fn
	if i := strings.LastIndexByte(fn, '/'); i >= 0 && i < len(fn)-1 {
		shortFn = fn[i+1:]
	}
	var text string
	for _, c := range []struct {
		fn string
		at report.Frame
	}{{fn, f}, {fn, short}, {shortFn, short}} {
		text = c.fn
		if f.File != "" {
			text += " " + fileLine(c.at)
		}
		if runeLen(text) <= n {
			return text
		}
	}
	if f.File == "" {
		return truncate(text, n)
	}
	at := " " + fileLine(short)
	if room := n - runeLen(at); room >= 8 { // a useful stub of the function
		return truncate(shortFn, room) + at
	}
	return truncate(text, n)
}
