package session

import (
	"testing"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/python"
)

type noKernel struct{}

func (noKernel) SetPython(uint32, bpf.LeaktraceLtPyProc) error { return nil }
func (noKernel) ForgetPython(uint32) error                     { return nil }

func TestPyLocations(t *testing.T) {
	s := &Session{py: &pyState{tracker: python.NewTracker(noKernel{}, nil),
		pending: map[uint32]pendingPy{}, ids: map[python.Frame]uint64{}}}
	frames := []python.Frame{{Function: "open_settings", File: "/srv/app.py", Line: 23}, {Function: "<module>", File: "/srv/app.py", Line: 90, Entry: true}}

	// The frames belong to the record with the same tid and time.
	s.py.pending[11] = pendingPy{ts: 100, frames: frames}
	locs := s.pyLocations(&event.Event{TID: 11, Time: 100}, nil)
	if len(locs) != 2 || locs[0].Module != python.Module {
		t.Fatalf("locations %+v", locs)
	}
	for i, l := range locs {
		if got := s.pyFrame(l.Vaddr); got != frames[i] {
			t.Errorf("location %d is %+v, want %+v", i, got, frames[i])
		}
	}
	// The same frames intern to the same locations: stacks stay equal.
	s.py.pending[11] = pendingPy{ts: 200, frames: frames}
	again := s.pyLocations(&event.Event{TID: 11, Time: 200}, nil)
	if len(again) != 2 || again[0] != locs[0] || again[1] != locs[1] {
		t.Errorf("interned again as %+v, first %+v", again, locs)
	}

	// Frames whose own record was lost attach to nothing.
	s.py.pending[11] = pendingPy{ts: 300, frames: frames}
	if got := s.pyLocations(&event.Event{TID: 11, Time: 301}, nil); len(got) != 0 {
		t.Errorf("stale frames attached: %+v", got)
	}
	if _, ok := s.py.pending[11]; ok {
		t.Error("stale frames kept")
	}
	if got := s.pyFrame(99); got.Resolved() {
		t.Errorf("unknown id resolved to %+v", got)
	}
}
