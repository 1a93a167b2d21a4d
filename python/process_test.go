package python

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/leaktrace/leaktrace/bpf"
)

type fakeKernel struct {
	set map[uint32]bpf.LeaktraceLtPyProc
}

func (k *fakeKernel) SetPython(pid uint32, p bpf.LeaktraceLtPyProc) error {
	k.set[pid] = p
	return nil
}

func (k *fakeKernel) ForgetPython(pid uint32) error {
	delete(k.set, pid)
	return nil
}

// testTracker has pid 7 running an interpreter whose memory is im.
func testTracker(im *image) *Tracker {
	t := NewTracker(&fakeKernel{set: map[uint32]bpf.LeaktraceLtPyProc{}}, nil)
	img := &Image{Path: "/usr/bin/python3.11", Version: 0x030b02f0, layout: &layout311}
	t.procs[7] = &process{image: img, rd: reader{mem: im.mem, l: &layout311, types: testTypes}}
	return t
}

func instrAt(code uint64, unit int) uint64 {
	return code + uint64(layout311.CodeHeader) + uint64(2*unit)
}

func TestResolve(t *testing.T) {
	im := newImage()
	table := sampleLinetable(t)
	inner := im.code("Store.open_cache", "/srv/store.py", 2, table)
	outer := im.code("<module>", "/srv/main.py", 2, table)
	tr := testTracker(im)
	raw := []RawFrame{
		{Code: inner, PrevInstr: instrAt(inner, 41), FirstLine: 2},
		{Code: outer, PrevInstr: instrAt(outer, 70), FirstLine: 2, Entry: true},
		{Code: 0xbad000, PrevInstr: 1, FirstLine: 1},
	}
	got := tr.Resolve(7, raw, 0, nil)
	want := []Frame{
		{Function: "Store.open_cache", File: "/srv/store.py", Line: 12},
		{Function: "<module>", File: "/srv/main.py", Line: 13, Entry: true},
		{},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if tr.Stats.Frames != 3 || tr.Stats.Unresolved != 1 || tr.Stats.Stacks != 1 {
		t.Errorf("stats %+v", tr.Stats)
	}

	// A cached code object whose first line no longer matches was replaced.
	raw[0].FirstLine = 99
	if f := tr.Resolve(7, raw[:1], 0, nil); f[0].Resolved() {
		t.Errorf("a changed code object resolved: %+v", f[0])
	}
	// An unknown process resolves nothing but still counts.
	if f := tr.Resolve(8, raw[:1], StatusNoThreadState, nil); f[0].Resolved() {
		t.Errorf("unknown process resolved %+v", f[0])
	}
	if tr.Stats.NoThreadState != 1 {
		t.Errorf("no-thread-state stacks %d, want 1", tr.Stats.NoThreadState)
	}
}

func TestForkExecExit(t *testing.T) {
	tr := testTracker(newImage())
	k := tr.kernel.(*fakeKernel)
	k.set[7] = bpf.LeaktraceLtPyProc{}
	tr.Fork(7, 8)
	if !tr.Known(8) {
		t.Fatal("a forked child does not run its parent's interpreter")
	}
	tr.Exec(8)
	if tr.Known(8) {
		t.Error("exec kept the old interpreter")
	}
	tr.Exit(7)
	if tr.Known(7) || len(k.set) != 0 {
		t.Errorf("exit kept state: known=%v kernel=%v", tr.Known(7), k.set)
	}
}

// TestInspectDebianPython reads the interpreter of the python3 most users
// have, when this machine has it.
func TestInspectDebianPython(t *testing.T) {
	const path = "/usr/bin/python3.11"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI=true and %s is missing: .ci/run installs Debian's python3", path)
		}
		t.Skipf("skipping: %s not installed", path)
	}
	im, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if im.Version>>16 != 0x030b || im.runtime == 0 || im.codeType == 0 {
		t.Errorf("image %+v", im)
	}
	k := &fakeKernel{set: map[uint32]bpf.LeaktraceLtPyProc{}}
	tr := NewTracker(k, nil)
	tr.Mapped(5, path, im.loads[0].Vaddr&^0xfff, im.loads[0].Off&^0xfff)
	if got := k.set[5]; got.Runtime != im.runtime || got.TstateNativeTid != layout311.Kernel.TstateNativeTid {
		t.Errorf("kernel entry %+v", got)
	}
}

func TestInspectNotPython(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(exe); !errors.Is(err, ErrNotPython) {
		t.Errorf("a Go test binary: %v, want ErrNotPython", err)
	}
}

// BenchmarkResolve is the per-event cost of naming a 20-frame Python stack
// once its code objects are cached (the common case: a service opens files
// from the same few places).
func BenchmarkResolve(b *testing.B) {
	im := newImage()
	table := sampleLinetable(b)
	raw := make([]RawFrame, 20)
	for i := range raw {
		c := im.code("mod.func", "/srv/app/module.py", 2, table)
		raw[i] = RawFrame{Code: c, PrevInstr: instrAt(c, 41+i%30), FirstLine: 2, Entry: i%4 == 3}
	}
	tr := testTracker(im)
	out := tr.Resolve(7, raw, 0, nil)
	b.ReportAllocs()
	for b.Loop() {
		out = tr.Resolve(7, raw, 0, out[:0])
	}
}

// BenchmarkResolveCold reads every code object anew (first sight of a stack).
func BenchmarkResolveCold(b *testing.B) {
	im := newImage()
	table := sampleLinetable(b)
	raw := make([]RawFrame, 20)
	for i := range raw {
		c := im.code("mod.func", "/srv/app/module.py", 2, table)
		raw[i] = RawFrame{Code: c, PrevInstr: instrAt(c, 41), FirstLine: 2}
	}
	tr := testTracker(im)
	var out []Frame
	b.ReportAllocs()
	for b.Loop() {
		tr.procs[7].codes = nil
		out = tr.Resolve(7, raw, 0, out[:0])
	}
}

// A code object freed and replaced by another at the same address (a module
// body after its import) is not named from the cache: the kernel's filename
// pointer tells them apart.
func TestResolveReusedAddress(t *testing.T) {
	im := newImage()
	table := sampleLinetable(t)
	first := im.code("<module>", "/usr/lib/python3/sitecustomize.py", 1, table)
	tr := testTracker(im)
	ident := func(code uint64) uint64 {
		return binary.LittleEndian.Uint64(im.mem.regions[code][layout311.CodeFilename:])
	}
	got := tr.Resolve(7, []RawFrame{{Code: first, PrevInstr: instrAt(first, 41), FirstLine: 1, Ident: ident(first)}}, 0, nil)
	if got[0].File != "/usr/lib/python3/sitecustomize.py" {
		t.Fatalf("first object: %+v", got[0])
	}
	// The second module's code object lands at the first one's address.
	second := im.code("<module>", "/srv/app.py", 1, table)
	im.mem.regions[first] = im.mem.regions[second]
	got = tr.Resolve(7, []RawFrame{{Code: first, PrevInstr: instrAt(first, 41), FirstLine: 1, Ident: ident(second)}}, 0, nil)
	if got[0].File != "/srv/app.py" {
		t.Errorf("reused address named from the cache: %+v", got[0])
	}
}

// Learn keeps what the kernel read on first sight: the frame is named with
// no read of the process at all.
func TestLearn(t *testing.T) {
	im := newImage()
	tr := testTracker(im)
	table := sampleLinetable(t)
	const code, ident = 0x7000, 0x8000
	tr.Learn(7, code, ident, 2, "Store.open_cache", "/srv/store.py", table)
	got := tr.Resolve(7, []RawFrame{{Code: code, PrevInstr: instrAt(code, 41), FirstLine: 2, Ident: ident}}, 0, nil)
	if want := (Frame{Function: "Store.open_cache", File: "/srv/store.py", Line: 12}); got[0] != want {
		t.Errorf("got %+v, want %+v", got[0], want)
	}
	if tr.Stats.Unresolved != 0 || tr.Stats.Learned != 1 {
		t.Errorf("stats %+v", tr.Stats)
	}
}

// Names the kernel read without a line table still name the frame when the
// process can no longer be read; the line is then unknown.
func TestLearnWithoutLinetable(t *testing.T) {
	tr := testTracker(newImage())
	const code, ident = 0x7000, 0x8000
	tr.Learn(7, code, ident, 2, "Store.open_cache", "/srv/store.py", nil)
	got := tr.Resolve(7, []RawFrame{{Code: code, PrevInstr: instrAt(code, 41), FirstLine: 2, Ident: ident}}, 0, nil)
	if want := (Frame{Function: "Store.open_cache", File: "/srv/store.py"}); got[0] != want {
		t.Errorf("got %+v, want %+v", got[0], want)
	}
}
