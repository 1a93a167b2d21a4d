package tracer

import (
	"testing"
	"unsafe"

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

func pyCodeRecord(name, file string, linetable []byte, flags uint32) []byte {
	var r bpf.LeaktraceLtPyCodeEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_PY_CODE)
	r.H.Pid, r.H.Tid, r.H.Ts = 10, 11, 12345
	r.Code, r.Ident, r.Firstlineno, r.Flags = 0x1000, 0x2000, 7, flags
	for i := range min(len(name), len(r.Name)) {
		r.Name[i] = int8(name[i])
	}
	for i := range min(len(file), len(r.File)) {
		r.File[i] = int8(file[i])
	}
	copy(r.Linetable[:], linetable)
	r.NameLen, r.FileLen, r.LinetableLen = uint32(len(name)), uint32(len(file)), uint32(len(linetable))
	return rawOf(&r, int(unsafe.Sizeof(r)))
}

func TestDecodePyCode(t *testing.T) {
	var dec Decoder
	var d Decoded
	if err := dec.Decode(pyCodeRecord("Store.get", "/srv/store.py", []byte{1, 2, 3}, 7), &d); err != nil {
		t.Fatal(err)
	}
	c := d.PyCode
	if d.Event.Type != event.PyCode || c.Code != 0x1000 || c.Ident != 0x2000 || c.FirstLine != 7 ||
		c.Name != "Store.get" || c.File != "/srv/store.py" || string(c.Linetable) != "\x01\x02\x03" {
		t.Fatalf("decoded %+v %+v", d.Event, c)
	}
	// What the kernel could not read is left empty, whatever the lengths say.
	if err := dec.Decode(pyCodeRecord("x", "/y.py", []byte{1}, 0), &d); err != nil {
		t.Fatal(err)
	}
	if d.PyCode.Name != "" || d.PyCode.File != "" || d.PyCode.HasLines {
		t.Errorf("unread fields decoded: %+v", d.PyCode)
	}
	bad := pyCodeRecord("x", "/y.py", nil, 7)
	if err := dec.Decode(bad[:len(bad)-1], &d); err == nil {
		t.Error("a short record decoded")
	}
}

func FuzzDecodePyCode(f *testing.F) {
	f.Add(pyCodeRecord("Store.get", "/srv/store.py", []byte{1, 2, 3}, 7))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var dec Decoder
		var d Decoded
		if err := dec.Decode(raw, &d); err != nil {
			return
		}
		if len(d.PyCode.Name) > 128 || len(d.PyCode.File) > 256 || len(d.PyCode.Linetable) > 4096 {
			t.Fatalf("oversize: %+v", d.PyCode)
		}
	})
}
