/* Prints the offsets leaktrace's Python layouts hold, as the interpreter's
 * own headers define them: python/layout_test.go compiles it against each
 * installed CPython's headers and compares with the tables. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_frame.h"

#define P(name, expr) printf("%s %zu\n", name, (size_t)(expr))

int main(void)
{
	P("rt_finalizing", offsetof(_PyRuntimeState, _finalizing));
	P("rt_interp_head", offsetof(_PyRuntimeState, interpreters.head));
	P("interp_tstate_head", offsetof(PyInterpreterState, threads.head));
	P("tstate_prev", offsetof(PyThreadState, prev));
	P("tstate_next", offsetof(PyThreadState, next));
	P("tstate_native_tid", offsetof(PyThreadState, native_thread_id));
#if PY_VERSION_HEX < 0x030d0000
	P("tstate_frame", offsetof(PyThreadState, cframe));
	P("cframe_current", offsetof(_PyCFrame, current_frame));
	P("frame_code", offsetof(_PyInterpreterFrame, f_code));
	P("frame_instr", offsetof(_PyInterpreterFrame, prev_instr));
#else
	P("tstate_frame", offsetof(PyThreadState, current_frame));
	P("frame_code", offsetof(_PyInterpreterFrame, f_executable));
	P("frame_instr", offsetof(_PyInterpreterFrame, instr_ptr));
#endif
	P("frame_previous", offsetof(_PyInterpreterFrame, previous));
#if PY_VERSION_HEX < 0x030c0000
	P("frame_marker", offsetof(_PyInterpreterFrame, is_entry));
#else
	P("frame_marker", offsetof(_PyInterpreterFrame, owner));
	P("marker_min", FRAME_OWNED_BY_CSTACK);
#endif
	P("code_firstlineno", offsetof(PyCodeObject, co_firstlineno));
	P("code_header", offsetof(PyCodeObject, co_code_adaptive));
	P("code_filename", offsetof(PyCodeObject, co_filename));
	P("code_qualname", offsetof(PyCodeObject, co_qualname));
	P("code_linetable", offsetof(PyCodeObject, co_linetable));
	P("ob_type", offsetof(PyObject, ob_type));
	P("var_size", offsetof(PyVarObject, ob_size));
	P("bytes_data", offsetof(PyBytesObject, ob_sval));
	P("str_length", offsetof(PyASCIIObject, length));
	P("str_state", offsetof(PyASCIIObject, state));
	P("str_ascii_data", sizeof(PyASCIIObject));
	P("str_compact_data", sizeof(PyCompactUnicodeObject));
	return 0;
}
