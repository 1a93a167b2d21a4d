//go:build linux

package main

import (
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/exporter"
	"github.com/leaktrace/leaktrace/session"
)

// isTerminal reports whether f is a terminal: a character device that answers
// the terminal ioctl (/dev/null is a character device, and no terminal).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}

// colorOn: a terminal, and the user did not ask for no color (no-color.org).
func colorOn(f *os.File) bool {
	return isTerminal(f) && os.Getenv("NO_COLOR") == ""
}

func terminalSize(f *os.File) (int, int) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 100, 30
	}
	return int(ws.Col), int(ws.Row)
}

// Alternate screen (as less and top use it): the live view's frames do not
// land in the terminal's scrollback, and the screen the user had comes back
// when attach ends, with the final report printed below it.
const (
	enterAltScreen = "\x1b[?1049h\x1b[?25l" // alternate screen, cursor hidden
	leaveAltScreen = "\x1b[?25h\x1b[?1049l" // cursor shown, main screen back
)

// liveScreen draws attach's live view on a terminal.
type liveScreen struct {
	f      *os.File
	minAge time.Duration
	opened bool
}

func openLiveScreen(f *os.File, minAge time.Duration) *liveScreen {
	return &liveScreen{f: f, minAge: minAge}
}

func (s *liveScreen) draw(sess *session.Session, pid int, comm string) {
	r, err := sess.Report(session.ReportInfo{Mode: "attach", PID: pid, ExitCode: -1})
	if err != nil {
		return
	}
	if !s.opened {
		io.WriteString(s.f, enterAltScreen)
		s.opened = true
	}
	open := 0
	sess.With(func(a *aggregator.Aggregator) { open = len(a.Live(uint32(pid))) })
	w, h := terminalSize(s.f)
	v := exporter.LiveView{
		PID: pid, Comm: comm, Elapsed: time.Since(sess.Started()), Received: r.Events.Received,
		Lost: r.Events.Lost, Open: open, MinAge: s.minAge, Sites: r.Sites, Width: w, Height: h, Color: colorOn(s.f),
	}
	if r.HeldAtExit != nil {
		v.Held, v.HeldHandles = r.HeldAtExit.Sites, r.HeldAtExit.Handles
	}
	if r.YoungerThanMinAge != nil {
		v.Young = r.YoungerThanMinAge.Handles
	}
	if r.Mapped != nil {
		v.Mapped = r.Mapped.Bytes
		for _, s := range r.Mapped.Sites {
			v.MappedGrowth += s.GrowthBytes
		}
	}
	exporter.WriteLive(s.f, v)
}

// close leaves the alternate screen; safe on a nil or never-drawn screen.
func (s *liveScreen) close() {
	if s == nil || !s.opened {
		return
	}
	io.WriteString(s.f, leaveAltScreen)
	s.opened = false
}
