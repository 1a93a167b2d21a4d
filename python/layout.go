// Package python finds CPython interpreters in traced processes, gives the
// kernel side the offsets it needs to walk a thread's Python frames at a
// syscall, and turns the frames it sends (code object, last instruction) into
// function, file and line by reading the code objects from the live process.
package python

import (
	"fmt"

	"github.com/leaktrace/leaktrace/bpf"
)

// Layout is where the fields leaktrace reads sit in one CPython version's
// structs: the kernel's part (thread list, frames) and Go's (code, str and
// bytes objects). The kernel has one frame walk for every version; a Layout
// is all that differs.
type Layout struct {
	Kernel bpf.LeaktraceLtPyProc // Runtime and Version are left zero

	CodeHeader    int // bytes of PyCodeObject before co_code_adaptive
	CodeFirstLine int // co_firstlineno (int)
	CodeFilename  int
	CodeQualname  int
	CodeLinetable int

	ObType        int // PyObject.ob_type
	VarSize       int // PyVarObject.ob_size
	BytesData     int // PyBytesObject.ob_sval
	StrLength     int // PyASCIIObject.length
	StrState      int // PyASCIIObject.state (interned:2 kind:3 compact:1 ascii:1)
	StrASCIIData  int // data of a compact ASCII str: sizeof(PyASCIIObject)
	StrCompactDat int // data of a compact non-ASCII str: sizeof(PyCompactUnicodeObject)
}

// Layout flags for the kernel (LT_PY_L_* in bpf/leaktrace.h).
const (
	layoutCFrame = 1 << 0 // the thread's frame is reached through its _PyCFrame
	layoutShim   = 1 << 1 // marked frames are C-stack shims, not an eval call's first frame
)

// frameOwnedByCStack is FRAME_OWNED_BY_CSTACK in 3.12 and 3.13 and
// FRAME_OWNED_BY_INTERPRETER in 3.14 (the thread's base frame, below
// FRAME_OWNED_BY_CSTACK = 4): an owner this high is no Python code's frame.
const frameOwnedByCStack = 3

// The tables below are CPython on x86-64, as its own headers define them:
// TestLayoutsMatchHeaders compiles testdata/offsets.c against each installed
// version's headers and compares. 3.13 and later publish their offsets in
// _PyRuntime (debugOffsetsLayout), so they need no table.

// layout311: Include/internal/pycore_runtime.h, pycore_interp.h,
// cpython/pystate.h, pycore_frame.h, cpython/code.h, cpython/unicodeobject.h.
var layout311 = Layout{
	Kernel: bpf.LeaktraceLtPyProc{
		CodeMask:         ^uint64(0),
		Flags:            layoutCFrame,
		RtFinalizing:     24,
		RtInterpHead:     40,
		InterpTstateHead: 16,
		TstatePrev:       0,
		TstateNext:       8,
		TstateNativeTid:  160,
		TstateFrame:      56, // cframe
		CframeCurrent:    8,
		FrameCode:        32,
		FramePrevious:    48,
		FrameInstr:       56, // prev_instr
		FrameMarker:      68, // is_entry
		MarkerMin:        1,
		CodeFirstlineno:  72,
		CodeIdent:        112, // co_filename
	},
	CodeHeader:    184,
	CodeFirstLine: 72,
	CodeFilename:  112,
	CodeQualname:  128,
	CodeLinetable: 136,
	ObType:        8,
	VarSize:       16,
	BytesData:     32,
	StrLength:     16,
	StrState:      32,
	StrASCIIData:  48,
	StrCompactDat: 72,
}

// layout312: the frame chain starts at the _PyCFrame as in 3.11, f_code
// moved to the frame's start, and an eval call's first frame sits on a
// shim frame owned by the C stack instead of carrying is_entry.
var layout312 = Layout{
	Kernel: bpf.LeaktraceLtPyProc{
		CodeMask:         ^uint64(0),
		Flags:            layoutCFrame | layoutShim,
		RtFinalizing:     24,
		RtInterpHead:     40,
		InterpTstateHead: 72,
		TstatePrev:       0,
		TstateNext:       8,
		TstateNativeTid:  144,
		TstateFrame:      56, // cframe
		CframeCurrent:    0,
		FrameCode:        0,
		FramePrevious:    8,
		FrameInstr:       56, // prev_instr
		FrameMarker:      70, // owner
		MarkerMin:        frameOwnedByCStack,
		CodeFirstlineno:  68,
		CodeIdent:        112, // co_filename
	},
	CodeHeader:    192,
	CodeFirstLine: 68,
	CodeFilename:  112,
	CodeQualname:  128,
	CodeLinetable: 136,
	ObType:        8,
	VarSize:       16,
	BytesData:     32,
	StrLength:     16,
	StrState:      32,
	StrASCIIData:  40,
	StrCompactDat: 56,
}

// tableLayout returns the table of a version before 3.13.
func tableLayout(version uint32) (*Layout, bool) {
	switch version >> 16 {
	case 0x030b:
		return &layout311, true
	case 0x030c:
		return &layout312, true
	}
	return nil, false
}

// maxWindow is the most bytes the kernel reads of a frame or a code object
// at once (LT_PY_WIN - 1 in bpf/leaktrace.h).
const maxWindow = 255

// window is the span [start, end) holding every field (offset, size).
func window(fields ...[2]uint16) (start uint16, n int) {
	start, end := fields[0][0], 0
	for _, f := range fields {
		start = min(start, f[0])
		end = max(end, int(f[0])+int(f[1]))
	}
	return start, end - int(start)
}

// setWindows sets where the kernel reads a frame's fields and a code
// object's at once: one read each instead of one per field. A layout whose
// fields lie further apart than the kernel's buffer is refused.
func setWindows(k *bpf.LeaktraceLtPyProc) error {
	fw, fn := window([2]uint16{k.FrameCode, 8}, [2]uint16{k.FramePrevious, 8}, [2]uint16{k.FrameInstr, 8}, [2]uint16{k.FrameMarker, 1})
	cw, cn := window([2]uint16{k.CodeFirstlineno, 4}, [2]uint16{k.CodeIdent, 8})
	if fn > maxWindow || cn > maxWindow {
		return fmt.Errorf("python layout: a frame's fields span %d bytes and a code object's %d, more than the kernel reads at once (%d)", fn, cn, maxWindow)
	}
	k.FrameWin, k.FrameWinLen = fw, uint8(fn)
	k.CodeWin, k.CodeWinLen = cw, uint8(cn)
	// A thread state's window only lets the kernel check the state it found
	// last for a thread; without it, it walks the list every time.
	k.TstateWin, k.TstateWinLen = 0, 0
	if tw, tn := window([2]uint16{k.TstatePrev, 8}, [2]uint16{k.TstateNativeTid, 8}, [2]uint16{k.TstateFrame, 8}); tn <= maxWindow {
		k.TstateWin, k.TstateWinLen = tw, uint8(tn)
	}
	return nil
}
