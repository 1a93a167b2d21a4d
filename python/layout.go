// Package python finds CPython interpreters in traced processes, gives the
// kernel side the offsets it needs to walk a thread's Python frames at a
// syscall, and turns the frames it sends (code object, last instruction) into
// function, file and line by reading the code objects from the live process.
package python

import "github.com/leaktrace/leaktrace/bpf"

// Layout is where the fields leaktrace reads sit in one CPython version's
// structs: the kernel's part (thread list, frames) and Go's (code, str and
// bytes objects).
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
	StrASCIIData  int // data of a compact ASCII str
	StrCompactDat int // data of a compact non-ASCII str
}

// layout311 is CPython 3.11 on x86-64 (Include/internal/pycore_runtime.h,
// pycore_interp.h, cpython/pystate.h, pycore_frame.h, cpython/code.h,
// cpython/unicodeobject.h); checked against both a shared-libpython and a
// statically linked build by reading a live interpreter's own memory.
var layout311 = Layout{
	Kernel: bpf.LeaktraceLtPyProc{
		RtFinalizing:     24,
		RtInterpHead:     40,
		InterpTstateHead: 16,
		TstateNext:       8,
		TstateNativeTid:  160,
		TstateCframe:     56,
		CframeCurrent:    8,
		FrameCode:        32,
		FramePrevious:    48,
		FramePrevInstr:   56,
		FrameIsEntry:     68,
		CodeFirstlineno:  72,
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

// layoutFor returns the layout of a PY_VERSION_HEX, false when leaktrace does
// not know that version. 3.12 moved the frame chain (shim frames, no cframe
// current_frame) and 3.13 publishes _Py_DebugOffsets; neither is read yet.
func layoutFor(version uint32) (*Layout, bool) {
	if version>>16 == 0x030b {
		return &layout311, true
	}
	return nil, false
}
