package tracer

import (
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/event"
)

func rawOf[T any](v *T, n int) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
	return append([]byte(nil), b[:n]...)
}

func putStr(dst []int8, s string) {
	for i := 0; i < len(s) && i < len(dst)-1; i++ {
		dst[i] = int8(s[i])
	}
}

func TestDecodeFDOpen(t *testing.T) {
	var r bpf.LeaktraceLtFdEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FD_OPEN)
	r.H.Pid, r.H.Tid, r.H.Nr = 10, 11, 257
	putStr(r.H.Comm[:], "cat")
	r.Fd, r.Fd2 = 5, -1
	r.Mode = 0o100644
	putStr(r.Path[:], "/etc/passwd")
	r.Stack.Ip, r.Stack.Sp = 0x1000, 0x7ff0
	r.Stack.KstackLen = 2
	r.Stack.Kstack[0], r.Stack.Kstack[1] = 0x1000, 0x2000
	r.Stack.StackLen = 16
	raw := rawOf(&r, fdStackOff+stackBytesOff+16)

	var dec Decoder
	var d Decoded
	if err := dec.Decode(raw, &d); err != nil {
		t.Fatal(err)
	}
	e := d.Event
	if e.Type != event.FDOpen || e.PID != 10 || e.TID != 11 || e.FD != 5 || e.Comm != "cat" {
		t.Fatalf("event = %+v", e)
	}
	if e.Kind != event.KindFile || e.Target != "/etc/passwd" {
		t.Fatalf("kind/target = %v %q", e.Kind, e.Target)
	}
	if d.Stack.IP != 0x1000 || len(d.Stack.KernelFP) != 2 || len(d.Stack.Bytes) != 16 {
		t.Fatalf("stack = %+v", d.Stack)
	}
}

// TestDecodeStackForms: a known site carries no pcs; a new one its pcs; a
// copy the pcs the kernel unwound before the frame Go starts from.
func TestDecodeStackForms(t *testing.T) {
	var dec Decoder
	var d Decoded
	var r bpf.LeaktraceLtFdEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FD_OPEN)
	r.Stack.Ip, r.Stack.Img = 0x1000, 77

	r.Stack.Flags, r.Stack.Site = uint32(stackSite), 0xabc
	if err := dec.Decode(rawOf(&r, fdStackOff+kstackOff), &d); err != nil {
		t.Fatal(err)
	}
	if !d.Stack.Present || !d.Stack.SiteKnown || d.Stack.Site != 0xabc || len(d.Stack.Known) != 0 || d.Stack.Img != 77 {
		t.Fatalf("known site: %+v", d.Stack)
	}

	r.Stack.Flags, r.Stack.Known = uint32(stackNew), 3
	r.Stack.Kstack[0], r.Stack.Kstack[1], r.Stack.Kstack[2] = 0x1000, 0x2000, 0x3000
	if err := dec.Decode(rawOf(&r, fdStackOff+kstackOff+3*8), &d); err != nil {
		t.Fatal(err)
	}
	if !d.Stack.New || d.Stack.SiteKnown || !slices.Equal(d.Stack.Known, []uint64{0x1000, 0x2000, 0x3000}) {
		t.Fatalf("new site: %+v", d.Stack)
	}
	if err := dec.Decode(rawOf(&r, fdStackOff+kstackOff+2*8), &d); err == nil {
		t.Fatal("a new site's pcs past the record decoded")
	}

	r.Stack.Flags, r.Stack.Known, r.Stack.KstackLen, r.Stack.StackLen = 0, 2, 4, 8
	if err := dec.Decode(rawOf(&r, fdStackOff+stackBytesOff+8), &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Stack.Known, []uint64{0x1000, 0x2000}) || len(d.Stack.KernelFP) != 2 || d.Stack.KernelFP[0] != 0x3000 || len(d.Stack.Bytes) != 8 {
		t.Fatalf("copy after known frames: %+v", d.Stack)
	}
	r.Stack.Known = 4 // the frame Go starts from must be in the walk
	if err := dec.Decode(rawOf(&r, fdStackOff+stackBytesOff+8), &d); err == nil {
		t.Fatal("known frames past the kernel walk decoded")
	}
}

func TestDecodeRejects(t *testing.T) {
	var dec Decoder
	var d Decoded
	var r bpf.LeaktraceLtFdEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FD_OPEN)
	r.Stack.StackLen = 4096 // more than the record holds
	tests := map[string][]byte{
		"empty":          nil,
		"short header":   make([]byte, 10),
		"unknown type":   func() []byte { b := make([]byte, 64); b[24] = 99; return b }(),
		"stack overruns": rawOf(&r, fdStackOff+stackBytesOff+8),
	}
	for name, raw := range tests {
		if err := dec.Decode(raw, &d); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestClassifySockets(t *testing.T) {
	var r bpf.LeaktraceLtFdEvent
	r.Mode = 0o140000
	r.Flags = 1 << 2
	r.Sock.Family, r.Sock.Protocol, r.Sock.Sport, r.Sock.Dport = 2, 6, 5432, 40000
	copy(r.Sock.Saddr[:], []byte{127, 0, 0, 1})
	copy(r.Sock.Daddr[:], []byte{127, 0, 0, 1})
	if k, tgt := classify(&r); k != event.KindSocket || tgt != "tcp 127.0.0.1:5432 -> 127.0.0.1:40000" {
		t.Fatalf("got %v %q", k, tgt)
	}
	var a bpf.LeaktraceLtFdEvent
	putStr(a.Name[:], "[eventfd]")
	if k, _ := classify(&a); k != event.KindEventfd {
		t.Fatalf("eventfd classified as %v", k)
	}
}

func FuzzDecode(f *testing.F) {
	var r bpf.LeaktraceLtFdEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FD_OPEN)
	f.Add(rawOf(&r, fdStackOff+stackBytesOff))
	var e bpf.LeaktraceLtExecEvent
	e.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_EXEC)
	e.Depth = 3
	f.Add(rawOf(&e, int(unsafe.Sizeof(e))))
	var tk bpf.LeaktraceLtTaskEvent
	tk.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_TASK_NEW)
	f.Add(rawOf(&tk, taskStackOff+stackBytesOff+8))
	r.Stack.Flags, r.Stack.Known = uint32(stackNew), 2
	f.Add(rawOf(&r, fdStackOff+kstackOff+16))
	r.Stack.Flags = uint32(stackSite)
	f.Add(rawOf(&r, fdStackOff+kstackOff))
	fid := fileIDRecord()
	f.Add(rawOf(&fid, int(unsafe.Sizeof(fid))))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var dec Decoder
		var d Decoded
		if err := dec.Decode(raw, &d); err != nil {
			return
		}
		if len(d.Stack.Bytes) > MaxStackBytes || len(d.Stack.KernelFP)+len(d.Stack.Known) > 64 {
			t.Fatalf("stack beyond bounds: %d bytes, %d+%d frames", len(d.Stack.Bytes), len(d.Stack.Known), len(d.Stack.KernelFP))
		}
	})
}

func fileIDRecord() bpf.LeaktraceLtFileIdEvent {
	var r bpf.LeaktraceLtFileIdEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FILE_ID)
	r.H.Pid = 42
	r.Ip = 0x7f00_0000_1234
	r.File = bpf.LeaktraceLtFilePc{Ino: 99, Off: 0x1234, MtimeSec: 1700000000, Size: 4096, Dev: 8<<20 | 1, MtimeNsec: 5}
	return r
}

// TestDecodeFileID: the kernel's name for a file turns into the stat form Go
// keys rules by file with, and back to the kernel's key unchanged.
func TestDecodeFileID(t *testing.T) {
	r := fileIDRecord()
	raw := rawOf(&r, int(unsafe.Sizeof(r)))
	var dec Decoder
	var d Decoded
	if err := dec.Decode(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.Event.Type != event.FileID || d.Event.PID != 42 || d.FileID.IP != r.Ip {
		t.Fatalf("decoded %+v %+v", d.Event, d.FileID)
	}
	if got := fileKey(d.FileID.File); got != r.File {
		t.Errorf("kernel key %+v came back as %+v", r.File, got)
	}
	if d.FileID.File.Dev != unix.Mkdev(8, 1) {
		t.Errorf("device %#x, want stat's form of 8:1", d.FileID.File.Dev)
	}
	for _, n := range []int{headerSize, int(unsafe.Sizeof(r)) - 1} {
		if err := dec.Decode(raw[:n], &d); err == nil {
			t.Errorf("a file id cut to %d bytes decoded", n)
		}
	}
	r.File.Ino = 0
	if err := dec.Decode(rawOf(&r, int(unsafe.Sizeof(r))), &d); err == nil {
		t.Error("a file id of inode 0 decoded")
	}
}

func TestDecodeFDFail(t *testing.T) {
	var r bpf.LeaktraceLtFdEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FD_FAIL)
	r.H.Pid, r.H.Tid, r.H.Nr = 10, 10, 257
	r.Ret = -24
	raw := rawOf(&r, int(unsafe.Offsetof(r.Sock)))

	var dec Decoder
	var d Decoded
	if err := dec.Decode(raw, &d); err != nil {
		t.Fatal(err)
	}
	if e := d.Event; e.Type != event.FDFail || e.Errno != 24 || e.PID != 10 || e.Syscall != 257 {
		t.Fatalf("event = %+v", e)
	}
}

// A file named by its dentries (relative open, open_by_handle_at, SCM_RIGHTS)
// gets an absolute path, marked when the walk did not reach the root.
func TestDecodeDentryPath(t *testing.T) {
	for _, c := range []struct {
		flags uint32
		comps []string
		want  string
	}{
		{flagDPath | flagDPathFull, []string{"h", "corpus-1", "tmp"}, "/tmp/corpus-1/h"},
		{flagDPath, []string{"f.parquet", "data", "proj", "home"}, "…/home/proj/data/f.parquet"},
		{0, nil, "settings.json"}, // a relative path argument the kernel could not improve on
	} {
		var r bpf.LeaktraceLtFdEvent
		r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FD_OPEN)
		r.H.Nr = 257
		r.Fd, r.Fd2 = 5, -1
		r.Mode = 0o100644
		r.Flags = c.flags
		if c.comps == nil {
			putStr(r.Path[:], "settings.json")
		}
		for i, s := range c.comps {
			putStr(r.Path[i*64:(i+1)*64], s)
		}
		r.Depth = uint32(len(c.comps))
		var dec Decoder
		var d Decoded
		if err := dec.Decode(rawOf(&r, fdStackOff), &d); err != nil {
			t.Fatal(err)
		}
		if d.Event.Target != c.want {
			t.Errorf("flags %#x: target %q, want %q", c.flags, d.Event.Target, c.want)
		}
	}
}

// open(dir, O_TMPFILE) makes an unnamed file in dir: name it as the kernel does.
func TestDecodeTmpfile(t *testing.T) {
	var r bpf.LeaktraceLtFdEvent
	r.H.Type = uint16(bpf.LeaktraceLtEventTypeLT_EV_FD_OPEN)
	r.H.Nr = 257
	r.Fd, r.Fd2 = 5, -1
	r.Mode = 0o100600
	putStr(r.Path[:], "/tmp")
	putStr(r.Name[:], "#9979993")
	var dec Decoder
	var d Decoded
	if err := dec.Decode(rawOf(&r, fdStackOff), &d); err != nil {
		t.Fatal(err)
	}
	if want := "/tmp/#9979993 (deleted)"; d.Event.Target != want {
		t.Errorf("target %q, want %q", d.Event.Target, want)
	}
}
