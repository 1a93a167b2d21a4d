package python

import (
	"encoding/binary"
	"errors"
	"testing"
)

// debugOffsets builds a 3.13- or 3.14-shaped _Py_DebugOffsets with every offset
// set to 8 and the code object's co_code_adaptive to 200.
func debugOffsets(minor uint32, freeThreaded uint64) []byte {
	g := debugGroups[minor]
	n := 0
	for _, w := range g {
		n += w
	}
	b := make([]byte, debugHeader+8*n)
	copy(b, debugCookie)
	binary.LittleEndian.PutUint64(b[8:], uint64(0x03000000|minor<<16|0x05f0))
	binary.LittleEndian.PutUint64(b[16:], freeThreaded)
	for i := debugHeader; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], 8)
	}
	off := debugHeader
	for grp := 0; grp < grpCode; grp++ {
		off += 8 * g[grp]
	}
	binary.LittleEndian.PutUint64(b[off+8*9:], 200) // co_code_adaptive
	binary.LittleEndian.PutUint64(b[off+8*1:], 112) // co_filename
	binary.LittleEndian.PutUint64(b[off+8*3:], 128) // co_qualname
	binary.LittleEndian.PutUint64(b[off+8*4:], 136) // co_linetable
	off += 8 * (g[grpCode] + g[grpObject] + g[grpType] + g[grpTuple] + g[grpList] + g[grpSet] + g[grpDict] + g[grpFloat] + g[grpLong])
	binary.LittleEndian.PutUint64(b[off+8*2:], 32) // bytes ob_sval
	off += 8 * g[grpBytes]
	binary.LittleEndian.PutUint64(b[off+8*1:], 32) // str state
	binary.LittleEndian.PutUint64(b[off+8*2:], 16) // str length
	binary.LittleEndian.PutUint64(b[off+8*3:], 40) // sizeof(PyASCIIObject)
	return b
}

func TestDebugOffsets(t *testing.T) {
	for _, minor := range []uint32{13, 14} {
		l, v, err := debugOffsetsLayout(debugOffsets(minor, 0))
		if err != nil {
			t.Fatalf("3.%d: %v", minor, err)
		}
		if v>>16 != 0x0300|minor || l.CodeHeader != 200 || l.CodeQualname != 128 || l.StrCompactDat != 56 || l.Kernel.CodeMask != codeMasks[minor] {
			t.Errorf("3.%d: version %#x layout %+v", minor, v, l)
		}
	}
	var ue *UnsupportedError
	if _, _, err := debugOffsetsLayout(debugOffsets(13, 1)); !errors.As(err, &ue) || ue.Name() != "python3.13t" {
		t.Errorf("free-threaded: %v", err)
	}
	b := debugOffsets(14, 0)
	binary.LittleEndian.PutUint64(b[8:], 0x030f00a1)
	if _, _, err := debugOffsetsLayout(b); !errors.As(err, &ue) || ue.Name() != "python3.15" {
		t.Errorf("3.15: %v", err)
	}
	if _, _, err := debugOffsetsLayout(debugOffsets(13, 0)[:100]); err == nil {
		t.Error("a cut table was accepted")
	}
}

// FuzzDebugOffsets: _PyRuntime's first bytes come from a file on disk; any
// bytes give a sane layout or an error, never a panic.
func FuzzDebugOffsets(f *testing.F) {
	f.Add(debugOffsets(13, 0))
	f.Add(debugOffsets(14, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, _, err := debugOffsetsLayout(b)
		if err == nil && !l.sane() {
			t.Fatalf("insane layout accepted: %+v", l)
		}
	})
}
