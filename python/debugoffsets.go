package python

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/leaktrace/leaktrace/bpf"
)

// CPython 3.13 and later begin _PyRuntime with _Py_DebugOffsets
// (Include/internal/pycore_debug_offsets.h): a cookie, the version, whether
// the build is free-threaded, then one group of uint64 offsets per struct,
// each led by the struct's size. The groups grow between minor versions, so
// each known minor version lists how many words each group has; an unknown
// minor version is not guessed at.
const debugCookie = "xdebugpy"

// Groups of _Py_DebugOffsets, in order, up to the last one leaktrace reads.
const (
	grpRuntime = iota
	grpInterp
	grpThread
	grpFrame
	grpCode
	grpObject
	grpType
	grpTuple
	grpList
	grpSet // 3.14+
	grpDict
	grpFloat
	grpLong
	grpBytes
	grpUnicode
	numGroups
)

// debugGroups is the number of uint64 words of each group per minor version
// (0: the version has no such group).
var debugGroups = map[uint32][numGroups]int{
	13: {grpRuntime: 3, grpInterp: 13, grpThread: 9, grpFrame: 6, grpCode: 10, grpObject: 2, grpType: 4,
		grpTuple: 3, grpList: 3, grpSet: 0, grpDict: 3, grpFloat: 2, grpLong: 3, grpBytes: 3, grpUnicode: 4},
	14: {grpRuntime: 3, grpInterp: 16, grpThread: 9, grpFrame: 8, grpCode: 11, grpObject: 2, grpType: 4,
		grpTuple: 3, grpList: 3, grpSet: 4, grpDict: 3, grpFloat: 2, grpLong: 3, grpBytes: 3, grpUnicode: 4},
}

// codeMasks: 3.14's frames hold their code object as a _PyStackRef whose low
// bit is a tag.
var codeMasks = map[uint32]uint64{13: ^uint64(0), 14: ^uint64(7)}

// debugHeader is the size of cookie, version and free_threaded.
const debugHeader = 24

// debugOffsetsSize is how many bytes of _PyRuntime debugOffsetsLayout may
// read: the largest known version's groups.
func debugOffsetsSize() int {
	n := 0
	for _, g := range debugGroups {
		m := 0
		for _, w := range g {
			m += w
		}
		n = max(n, m)
	}
	return debugHeader + 8*n
}

// UnsupportedError says why an interpreter's frames cannot be walked.
type UnsupportedError struct {
	Version uint32 // PY_VERSION_HEX, 0 when unknown
	Minor   string // "3.10", when the version is known only from the file's name
	Reason  string
}

func (e *UnsupportedError) Error() string { return e.Name() + ": " + e.Reason }

// Unwrap makes an unsupported interpreter an ErrNotPython too.
func (e *UnsupportedError) Unwrap() error { return ErrNotPython }

// Name is "python3.15", or "python3.13t" for a free-threaded build.
func (e *UnsupportedError) Name() string {
	n := "python" + e.Minor
	if e.Version != 0 {
		n = fmt.Sprintf("python%d.%d", e.Version>>24, e.Version>>16&0xff)
	}
	if e.Reason == reasonFreeThreaded {
		n += "t"
	}
	return n
}

const reasonFreeThreaded = "free-threaded build"

// debugOffsetsLayout builds a layout from the _Py_DebugOffsets at the start
// of b (the first bytes of _PyRuntime as the file initializes them).
func debugOffsetsLayout(b []byte) (*Layout, uint32, error) {
	if len(b) < debugHeader || !bytes.Equal(b[:8], []byte(debugCookie)) {
		return nil, 0, fmt.Errorf("no _Py_DebugOffsets cookie in _PyRuntime")
	}
	version := uint32(binary.LittleEndian.Uint64(b[8:]))
	if binary.LittleEndian.Uint64(b[16:]) != 0 {
		return nil, version, &UnsupportedError{Version: version, Reason: reasonFreeThreaded}
	}
	minor := version >> 16 & 0xff
	groups, ok := debugGroups[minor]
	if version>>24 != 3 || !ok {
		return nil, version, &UnsupportedError{Version: version, Reason: "version not known to this leaktrace"}
	}
	var start [numGroups]int
	off := debugHeader
	for g, n := range groups {
		start[g] = off
		off += 8 * n
	}
	if len(b) < off {
		return nil, version, fmt.Errorf("_Py_DebugOffsets cut short: %d of %d bytes", len(b), off)
	}
	// word returns the i-th offset of group g (0 is the struct's size).
	bad := false
	word := func(g, i int) uint16 {
		v := binary.LittleEndian.Uint64(b[start[g]+8*i:])
		if v > 0xffff || i >= groups[g] {
			bad = true
		}
		return uint16(v)
	}
	l := &Layout{
		Kernel: bpf.LeaktraceLtPyProc{
			CodeMask:         codeMasks[minor],
			Flags:            layoutShim,
			RtFinalizing:     word(grpRuntime, 1),
			RtInterpHead:     word(grpRuntime, 2),
			InterpTstateHead: word(grpInterp, 3),
			TstatePrev:       word(grpThread, 1),
			TstateNext:       word(grpThread, 2),
			TstateNativeTid:  word(grpThread, 6),
			TstateFrame:      word(grpThread, 4),
			FramePrevious:    word(grpFrame, 1),
			FrameCode:        word(grpFrame, 2),
			FrameInstr:       word(grpFrame, 3),
			FrameMarker:      word(grpFrame, 5),
			MarkerMin:        frameOwnedByCStack,
			CodeFirstlineno:  word(grpCode, 5),
			CodeIdent:        word(grpCode, 1),
		},
		CodeFilename:  int(word(grpCode, 1)),
		CodeQualname:  int(word(grpCode, 3)),
		CodeLinetable: int(word(grpCode, 4)),
		CodeFirstLine: int(word(grpCode, 5)),
		CodeHeader:    int(word(grpCode, 9)),
		ObType:        int(word(grpObject, 1)),
		VarSize:       int(word(grpBytes, 1)),
		BytesData:     int(word(grpBytes, 2)),
		StrState:      int(word(grpUnicode, 1)),
		StrLength:     int(word(grpUnicode, 2)),
		StrASCIIData:  int(word(grpUnicode, 3)),
	}
	// PyCompactUnicodeObject adds utf8_length and utf8 to PyASCIIObject.
	l.StrCompactDat = l.StrASCIIData + 16
	if bad || !l.sane() {
		return nil, version, fmt.Errorf("_Py_DebugOffsets of %s out of range", VersionString(version))
	}
	return l, version, nil
}

// sane: every field Go reads lies inside the header it reads with it, and
// the kernel's reads fit its buffers.
func (l *Layout) sane() bool {
	code := l.CodeHeader
	k := l.Kernel
	return setWindows(&k) == nil && code >= 8 && code <= 4096 &&
		l.CodeFirstLine+4 <= code && l.CodeFilename+8 <= code && l.CodeQualname+8 <= code &&
		l.CodeLinetable+8 <= code && l.ObType+8 <= code &&
		l.StrLength+8 <= l.StrASCIIData && l.StrState+4 <= l.StrASCIIData && l.ObType+8 <= l.StrASCIIData &&
		l.VarSize+8 <= l.BytesData && l.BytesData <= 4096 && l.StrASCIIData <= 4096
}
