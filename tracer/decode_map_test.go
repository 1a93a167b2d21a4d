package tracer

import (
	"testing"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/event"
)

func TestDecodeMappings(t *testing.T) {
	var n bpf.LeaktraceLtMapEvent
	n.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_MAP_NEW)
	n.H.Pid, n.H.Tid = 10, 11
	n.Addr, n.Len = 0x7f0000000000, 8192
	n.Flags = uint32(event.FlagMapFile)
	putStr(n.Name[:], "data.bin")
	n.Stack.Ip, n.Stack.Sp, n.Stack.StackLen = 0x1000, 0x7ff0, 8

	n.Prot = 3

	var f bpf.LeaktraceLtMapEvent
	f.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_MAP_FREE)
	f.Addr, f.Len, f.Flags = 0x5000, 4096, uint32(event.FlagMapBrk)

	var m bpf.LeaktraceLtMapEvent
	m.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_MAP_MOVE)
	m.OldAddr, m.OldLen, m.Addr, m.Len, m.Flags = 0x1000, 4096, 0x9000, 8192, uint32(event.FlagMapDontUnmap)

	var b bpf.LeaktraceLtMapEvent
	b.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_MAP_NEW)
	b.Addr, b.Len, b.Flags = 0x5000, 100, uint32(event.FlagMapBrk)
	b.Prot = 3

	var pr bpf.LeaktraceLtMapEvent
	pr.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_MAP_PROT)
	pr.Addr, pr.Len, pr.Prot = 0x9000, 4096, 3
	pr.Stack.Ip, pr.Stack.Sp = 0x2000, 0x7ff0
	var pn bpf.LeaktraceLtMapEvent
	pn.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_MAP_PROT)
	pn.Addr, pn.Len = 0x9000, 4096

	var rsv bpf.LeaktraceLtMapEvent
	rsv.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_MAP_NEW)
	rsv.Addr, rsv.Len = 0xc000000000, 64<<20 // prot 0: PROT_NONE

	tests := []struct {
		name string
		raw  []byte
		want event.Event
		ip   uint64
	}{
		{"mmap of a file", rawOf(&n, mapStackOff+stackBytesOff+8),
			event.Event{Type: event.MapNew, PID: 10, TID: 11, Addr: 0x7f0000000000, Len: 8192, Target: "data.bin", Flags: uint32(event.FlagMapFile)}, 0x1000},
		{"brk shrinks", rawOf(&f, mapNameOff),
			event.Event{Type: event.MapFree, Addr: 0x5000, Len: 4096, Flags: uint32(event.FlagMapBrk)}, 0},
		{"mremap", rawOf(&m, mapNameOff),
			event.Event{Type: event.MapMove, OldAddr: 0x1000, OldLen: 4096, Addr: 0x9000, Len: 8192, Flags: uint32(event.FlagMapDontUnmap)}, 0},
		{"brk grows, no stack", rawOf(&b, mapStackOff),
			event.Event{Type: event.MapNew, Addr: 0x5000, Len: 100, Target: "[heap]", Flags: uint32(event.FlagMapBrk)}, 0},
		{"mprotect read-write", rawOf(&pr, mapStackOff+stackBytesOff),
			event.Event{Type: event.MapProt, Addr: 0x9000, Len: 4096}, 0x2000},
		{"mprotect PROT_NONE", rawOf(&pn, mapNameOff),
			event.Event{Type: event.MapProt, Addr: 0x9000, Len: 4096, Flags: event.FlagMapReserved}, 0},
		{"PROT_NONE reserves", rawOf(&rsv, mapStackOff),
			event.Event{Type: event.MapNew, Addr: 0xc000000000, Len: 64 << 20, Target: "[anon]", Flags: event.FlagMapReserved}, 0},
	}
	for _, tc := range tests {
		var dec Decoder
		var d Decoded
		if err := dec.Decode(tc.raw, &d); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		e := d.Event
		w := tc.want
		if e.Type != w.Type || e.PID != w.PID || e.TID != w.TID || e.Addr != w.Addr || e.Len != w.Len ||
			e.OldAddr != w.OldAddr || e.OldLen != w.OldLen || e.Target != w.Target || e.Flags != w.Flags || e.Kind != event.KindMapping {
			t.Errorf("%s: %+v", tc.name, e)
		}
		if d.Stack.IP != tc.ip {
			t.Errorf("%s: stack ip %#x, want %#x", tc.name, d.Stack.IP, tc.ip)
		}
	}
	var dec Decoder
	var d Decoded
	if err := dec.Decode(rawOf(&n, mapNameOff-1), &d); err == nil {
		t.Error("a cut mapping record decoded")
	}
	if err := dec.Decode(rawOf(&n, mapNameOff+8), &d); err == nil {
		t.Error("a creation without its name decoded")
	}
}

func FuzzDecodeMapping(f *testing.F) {
	for _, typ := range []bpf.LeaktraceLtEventType{bpf.LeaktraceLtEventTypeLT_EV_MAP_NEW, bpf.LeaktraceLtEventTypeLT_EV_MAP_FREE,
		bpf.LeaktraceLtEventTypeLT_EV_MAP_MOVE, bpf.LeaktraceLtEventTypeLT_EV_MAP_PROT} {
		var r bpf.LeaktraceLtMapEvent
		r.H.Type = uint16(typ)
		r.Stack.StackLen = 16
		f.Add(rawOf(&r, mapStackOff+stackBytesOff+16))
		f.Add(rawOf(&r, mapNameOff))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var dec Decoder
		var d Decoded
		if err := dec.Decode(raw, &d); err != nil {
			return
		}
		if len(d.Stack.Bytes) > MaxStackBytes || len(d.Stack.KernelFP) > 64 {
			t.Fatalf("stack beyond bounds: %d bytes, %d frames", len(d.Stack.Bytes), len(d.Stack.KernelFP))
		}
		if d.Event.Type >= event.MapNew && d.Event.Type <= event.MapProt && d.Event.Kind != event.KindMapping {
			t.Fatalf("mapping event of kind %v", d.Event.Kind)
		}
	})
}
