//go:build linux

package session

import (
	"fmt"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/python"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/symbolize"
	"github.com/leaktrace/leaktrace/tracer"
)

// pyState is the session's Python side: the interpreters found, each
// thread's Python stack waiting for the record it was sent with, and the
// frames interned so that stacks can refer to them as locations.
type pyState struct {
	tracker *python.Tracker
	pending map[uint32]pendingPy // tid -> frames sent just before its record
	raw     []python.RawFrame
	ids     map[python.Frame]uint64
	frames  []python.Frame // id-1 -> frame
}

type pendingPy struct {
	ts         uint64 // the header time of the record it belongs to
	frames     []python.Frame
	finalizing bool // the interpreter had begun to finalize
}

// lt_py_stack_event.status bit (LT_PY_FINALIZING).
const pyStatusFinalizing = 1 << 3

func newPyState(t *tracer.Tracer, s *Session) *pyState {
	return &pyState{
		tracker: python.NewTracker(t, s.log),
		pending: make(map[uint32]pendingPy),
		ids:     make(map[python.Frame]uint64),
	}
}

// pyStack names the frames of a Python stack record at once, while the
// process is alive, and keeps them for the record that follows.
func (s *Session) pyStack(d *tracer.Decoded) {
	e := &d.Event
	raw := s.py.raw[:0]
	for _, f := range d.Py.Frames {
		raw = append(raw, python.RawFrame{Code: f.Code, PrevInstr: f.PrevInstr, FirstLine: f.Firstlineno, Ident: f.Ident, Entry: f.Flags&1 != 0})
	}
	s.py.raw = raw
	s.py.pending[e.TID] = pendingPy{ts: e.Time, frames: s.py.tracker.Resolve(e.PID, raw, d.Py.Status, nil),
		finalizing: d.Py.Status&pyStatusFinalizing != 0}
}

// pyLocations appends to locs the Python frames sent for e, as locations of
// python.Module whose Vaddr names an interned frame.
func (s *Session) pyLocations(e *event.Event, locs []symbolize.Location) []symbolize.Location {
	p, ok := s.py.pending[e.TID]
	if !ok {
		return locs
	}
	delete(s.py.pending, e.TID)
	if p.ts != e.Time {
		return locs // its own record was lost: these frames belong to no one
	}
	if p.finalizing {
		e.Flags |= event.FlagPyFinalizing
	}
	for _, f := range p.frames {
		id, ok := s.py.ids[f]
		if !ok {
			s.py.frames = append(s.py.frames, f)
			id = uint64(len(s.py.frames))
			s.py.ids[f] = id
		}
		locs = append(locs, symbolize.Location{Module: python.Module, Vaddr: id})
	}
	return locs
}

func (s *Session) pyFrame(id uint64) python.Frame {
	if id == 0 || id > uint64(len(s.py.frames)) {
		return python.Frame{}
	}
	return s.py.frames[id-1]
}

// pyNotes says what the report's Python stacks lack.
func (s *Session) pyNotes(r *report.Report) {
	for _, u := range s.py.tracker.Unsupported {
		r.Notes = append(r.Notes, fmt.Sprintf("%s at pid %d: Python frames not supported (%s); native stacks only", u.Name, u.PID, u.Reason))
	}
	st := s.py.tracker.Stats
	if st.Unresolved > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d Python frames could not be named (their process exited, or the code object was gone, before it was read): shown without function",
			st.Unresolved, st.Frames))
	}
	if st.Truncated > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d Python stacks were deeper than %d frames: their outer frames are missing", st.Truncated, maxPyFrames))
	}
	shutdown := 0
	for _, l := range r.Leaks {
		if l.ClosedBy == closedByPyShutdown {
			shutdown++
		}
	}
	if shutdown > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d handles were still referenced when Python finished and were closed by the interpreter's shutdown: reported as leaks (closed_by %q)",
			shutdown, closedByPyShutdown))
	}
}

const (
	maxPyFrames        = 128 // LT_PY_FRAMES_MAX
	closedByPyShutdown = "python-shutdown"
)
