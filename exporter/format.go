package exporter

import (
	"cmp"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/leaktrace/leaktrace/report"
)

// isLive reports whether a mode ranks by outstanding handles and growth rather than
// by handles left open at exit.
func isLive(mode string) bool { return mode == "attach" || mode == "agent" }

// growing is 1 for a site whose outstanding count grew this session, for ranking.
func growing(s report.Site) int {
	if s.Growth > 0 {
		return 1
	}
	return 0
}

// kindNouns gives each handle kind a readable singular and plural.
var kindNouns = map[string][2]string{
	"file":     {"file", "files"},
	"dir":      {"directory", "directories"},
	"socket":   {"socket", "sockets"},
	"pipe":     {"pipe", "pipes"},
	"eventfd":  {"eventfd", "eventfds"},
	"epoll":    {"epoll fd", "epoll fds"},
	"memfd":    {"memfd", "memfds"},
	"timerfd":  {"timerfd", "timerfds"},
	"signalfd": {"signalfd", "signalfds"},
	"inotify":  {"inotify fd", "inotify fds"},
	"fanotify": {"fanotify fd", "fanotify fds"},
	"pidfd":    {"pidfd", "pidfds"},
	"io_uring": {"io_uring fd", "io_uring fds"},
	"anon":     {"anon fd", "anon fds"},
	"thread":   {"thread", "threads"},
	"process":  {"child process", "child processes"},
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// kindCount is one kind with its number of handles.
type kindCount struct {
	kind string
	n    int
}

// sortedKinds orders kinds by count, largest first, then by name, so output is stable.
func sortedKinds(m map[string]int) []kindCount {
	out := make([]kindCount, 0, len(m))
	for k, n := range m {
		if n != 0 {
			out = append(out, kindCount{k, n})
		}
	}
	slices.SortFunc(out, func(a, b kindCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.kind, b.kind))
	})
	return out
}

// kindList renders kinds as "file=2 socket=1".
func kindList(m map[string]int, sep string) string {
	var parts []string
	for _, kc := range sortedKinds(m) {
		parts = append(parts, clean(kc.kind)+"="+strconv.Itoa(kc.n))
	}
	return strings.Join(parts, sep)
}

// leakPhrase renders "3 leaked sockets", or "5 leaked handles (file=3 socket=2)" when
// kinds are mixed or unknown.
func leakPhrase(n int, kinds map[string]int) string {
	ks := sortedKinds(kinds)
	if len(ks) == 1 && ks[0].n == n {
		if nouns, ok := kindNouns[ks[0].kind]; ok {
			return fmt.Sprintf("%d leaked %s", n, plural(n, nouns[0], nouns[1]))
		}
	}
	s := fmt.Sprintf("%d leaked %s", n, plural(n, "handle", "handles"))
	if len(ks) > 0 {
		s += " (" + kindList(kinds, " ") + ")"
	}
	return s
}

// moduleBase is the file name of a module path ("" stays "").
func moduleBase(m string) string {
	if m == "" {
		return ""
	}
	return path.Base(m)
}

// fileLine renders "file:line", "file", or "" when the frame has no file.
func fileLine(f report.Frame) string {
	if f.File == "" {
		return ""
	}
	if f.Line > 0 {
		return clean(f.File) + ":" + strconv.Itoa(f.Line)
	}
	return clean(f.File)
}

// frameText renders a frame as "function file:line [module]"; a frame without a
// function shows its address instead.
func frameText(f report.Frame) string {
	var parts []string
	if f.Function != "" {
		parts = append(parts, clean(f.Function))
		if fl := fileLine(f); fl != "" {
			parts = append(parts, fl)
		}
	} else {
		parts = append(parts, fmt.Sprintf("%#x", f.Address))
	}
	if m := moduleBase(f.Module); m != "" {
		if f.Appended {
			m += ", appended"
		}
		parts = append(parts, "["+clean(m)+"]")
	}
	return strings.Join(parts, " ")
}

// headline is the frame that names a site: its Headline, or the innermost frame when
// the aggregator left the headline empty.
func headline(s report.Site) report.Frame {
	if s.Headline == (report.Frame{}) && len(s.Stack) > 0 {
		return s.Stack[0]
	}
	return s.Headline
}

// headlineText renders "function (file:line)", or "0xaddr in module" for a frame
// that was not symbolized.
func headlineText(f report.Frame) string {
	if f.Function == "" {
		s := fmt.Sprintf("%#x", f.Address)
		if m := moduleBase(f.Module); m != "" {
			s += " in " + clean(m)
		}
		return s
	}
	s := clean(f.Function)
	if fl := fileLine(f); fl != "" {
		s += " (" + fl + ")"
	} else if m := moduleBase(f.Module); m != "" {
		s += " [" + clean(m) + "]"
	}
	return s
}

// seconds renders a duration given in seconds at a precision that suits its size.
func seconds(s float64) string {
	if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 || s > 1e9 {
		return "?"
	}
	return roundDuration(time.Duration(s * float64(time.Second))).String()
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(10 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

// growthText renders a growth as "+N", "0" or "-N".
func growthText(g int) string {
	if g > 0 {
		return "+" + strconv.Itoa(g)
	}
	return strconv.Itoa(g)
}

// clean makes a string from the traced program (a path, a comm, a socket address)
// safe to print on a terminal: control characters and invalid UTF-8 are escaped, so
// a file named with escape sequences cannot repaint the user's screen.
func clean(s string) string {
	safe := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u0085'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// shellJoin renders a command line so that it could be pasted back into a shell.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
			r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r)))
	}) < 0 {
		return s
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 || !utf8.ValidString(s) {
		// bash's $'…' form, so that the escapes clean writes mean what they show.
		esc := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
		return "$'" + clean(esc) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runeLen is the printed width of s, counting one column per rune.
func runeLen(s string) int { return utf8.RuneCountInString(s) }

// truncate cuts s to at most n runes, marking a cut with "…".
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if runeLen(s) <= n {
		return s
	}
	rs := []rune(s)
	return string(rs[:n-1]) + "…"
}

// pad right-pads s with spaces to n runes.
func pad(s string, n int) string {
	if k := n - runeLen(s); k > 0 {
		return s + strings.Repeat(" ", k)
	}
	return s
}
