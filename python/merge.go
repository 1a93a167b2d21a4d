package python

import (
	"path/filepath"
	"strings"

	"github.com/leaktrace/leaktrace/report"
)

// Module is the module name of Python frames in a report.
const Module = "python"

// evalFunction is the interpreter's C function that runs Python frames: one
// call runs a chain of frames up to and including one marked Entry.
const evalFunction = "_PyEval_EvalFrameDefault"

// ReportFrame renders a Python frame as a report frame.
func ReportFrame(f Frame) report.Frame {
	return report.Frame{Function: f.Function, File: f.File, Line: f.Line, Module: Module}
}

// Merge puts Python frames (innermost first) in place of the interpreter's
// native frames (innermost first): each native call of the eval loop becomes
// the Python frames it ran, the interpreter's other frames beyond the first
// eval call are dropped, and native frames of other modules (C extensions
// calling back into Python, the C library below the syscall) stay. Python
// frames the native unwind did not reach go at the end, marked Appended.
func Merge(native []report.Frame, py []Frame) []report.Frame {
	if len(py) == 0 {
		return native
	}
	out := make([]report.Frame, 0, len(native)+len(py))
	next := 0 // the first Python frame not yet placed
	appended := false
	group := func() {
		for next < len(py) {
			f := py[next]
			next++
			rf := ReportFrame(f)
			rf.Appended = appended
			out = append(out, rf)
			if f.Entry {
				return
			}
		}
	}
	inEval := false
	for _, f := range native {
		if f.Function == evalFunction {
			inEval = true
			group()
			continue
		}
		if inEval && InterpreterModule(f.Module) {
			continue
		}
		out = append(out, f)
	}
	// The native unwind stopped short of these: they go last, marked.
	appended = true
	for next < len(py) {
		group()
	}
	return out
}

// InterpreterModule reports whether an ELF module is a CPython interpreter:
// python3.11, libpython3.11.so.1.0.
func InterpreterModule(module string) bool {
	base := filepath.Base(module)
	return strings.HasPrefix(base, "libpython") || strings.HasPrefix(base, "python")
}

// Culprit returns the frame that best names the user's code: the innermost
// resolved frame in the user's own files, else the innermost resolved one.
func Culprit(py []Frame) (Frame, bool) {
	var first *Frame
	for i := range py {
		f := &py[i]
		if !f.Resolved() {
			continue
		}
		if UserFile(f.File) {
			return *f, true
		}
		if first == nil {
			first = f
		}
	}
	if first == nil {
		return Frame{}, false
	}
	return *first, true
}

// UserFile reports whether a Python source file is the user's own code: not
// the interpreter's ("<frozen os>", "<string>"), not the standard library
// (…/lib/python3.11/…), not an installed package (site-packages,
// dist-packages, which live under the same directory in a virtualenv).
func UserFile(file string) bool {
	if file == "" || strings.HasPrefix(file, "<") {
		return false
	}
	if strings.Contains(file, "/site-packages/") || strings.Contains(file, "/dist-packages/") {
		return false
	}
	for _, dir := range []string{"/lib/python", "/lib64/python"} {
		i := strings.Index(file, dir)
		if i < 0 {
			continue
		}
		rest := file[i+len(dir):] // "3.11/os.py"
		if len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
			return false
		}
	}
	return true
}
