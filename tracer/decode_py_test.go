package tracer

import (
	"testing"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/event"
)

func pyStackRecord(depth uint32, frames int) []byte {
	var r bpf.LeaktraceLtPyStackEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_PY_STACK)
	r.H.Pid, r.H.Tid, r.H.Ts = 10, 11, 12345
	r.Depth, r.Status = depth, 2
	for i := range r.Frames {
		r.Frames[i] = bpf.LeaktraceLtPyFrame{Code: uint64(0x1000 * (i + 1)), PrevInstr: uint64(0x1100 * (i + 1)), Firstlineno: int32(i), Flags: 1}
	}
	return rawOf(&r, pyFramesOff+frames*pyFrameSize)
}

func TestDecodePyStack(t *testing.T) {
	var dec Decoder
	var d Decoded
	if err := dec.Decode(pyStackRecord(3, 3), &d); err != nil {
		t.Fatal(err)
	}
	if d.Event.Type != event.PyStack || d.Event.TID != 11 || d.Event.Time != 12345 {
		t.Fatalf("event %+v", d.Event)
	}
	if d.Py.Status != 2 || len(d.Py.Frames) != 3 || d.Py.Frames[2].Code != 0x3000 || d.Py.Frames[2].Firstlineno != 2 {
		t.Fatalf("stack %+v", d.Py)
	}
	for name, raw := range map[string][]byte{
		"depth beyond record": pyStackRecord(3, 2),
		"depth beyond max":    pyStackRecord(129, 128),
		"no depth":            pyStackRecord(0, 0)[:headerSize+2],
	} {
		if err := dec.Decode(raw, &d); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodePyStack(f *testing.F) {
	f.Add(pyStackRecord(3, 3))
	f.Add(pyStackRecord(0, 0))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var dec Decoder
		var d Decoded
		if err := dec.Decode(raw, &d); err != nil {
			return
		}
		if len(d.Py.Frames) > 128 {
			t.Fatalf("%d python frames", len(d.Py.Frames))
		}
	})
}
