package python

import (
	"reflect"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

func TestMerge(t *testing.T) {
	libc := func(fn string) report.Frame { return report.Frame{Function: fn, Module: "/lib/libc.so.6"} }
	interp := func(fn string) report.Frame { return report.Frame{Function: fn, Module: "/usr/bin/python3.11"} }
	ext := report.Frame{Function: "pysqlite_connect", Module: "/usr/lib/python3.11/lib-dynload/_sqlite3.so"}
	py := []Frame{
		{Function: "connect", File: "/srv/db.py", Line: 9},
		{Function: "main", File: "/srv/app.py", Line: 3, Entry: true},
		{Function: "<module>", File: "/srv/app.py", Line: 10, Entry: true},
	}
	pf := func(i int) report.Frame { return ReportFrame(py[i]) }
	appended := func(i int) report.Frame { f := pf(i); f.Appended = true; return f }
	tests := []struct {
		name   string
		native []report.Frame
		want   []report.Frame
	}{
		{
			name:   "each eval call becomes its frames",
			native: []report.Frame{libc("open64"), interp("_io_open"), interp(evalFunction), interp("_PyFunction_Vectorcall"), ext, interp(evalFunction), interp("main"), libc("__libc_start_call_main")},
			want:   []report.Frame{libc("open64"), interp("_io_open"), pf(0), pf(1), ext, pf(2), libc("__libc_start_call_main")},
		},
		{
			name:   "unwind stopped early: the rest at the end, marked",
			native: []report.Frame{libc("open64"), interp("_io_open")},
			want:   []report.Frame{libc("open64"), interp("_io_open"), appended(0), appended(1), appended(2)},
		},
		{
			name:   "unwind reached one eval call of two: the other appended",
			native: []report.Frame{libc("open64"), interp(evalFunction), interp("_PyFunction_Vectorcall")},
			want:   []report.Frame{libc("open64"), pf(0), pf(1), appended(2)},
		},
		{
			name:   "more eval calls than groups",
			native: []report.Frame{libc("open64"), interp(evalFunction), interp(evalFunction), interp(evalFunction)},
			want:   []report.Frame{libc("open64"), pf(0), pf(1), pf(2)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Merge(tc.native, py); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
	native := []report.Frame{libc("open64")}
	if got := Merge(native, nil); !reflect.DeepEqual(got, native) {
		t.Errorf("no Python frames changed the stack: %v", got)
	}
}

func TestUserFile(t *testing.T) {
	for file, want := range map[string]bool{
		"/srv/app/storage.py":               true,
		"script.py":                         true,
		"/home/me/python3-tools/x.py":       true,
		"/usr/lib/python3.11/subprocess.py": false,
		"/root/.pyenv/versions/3.11.7/lib/python3.11/tempfile.py": false,
		"/srv/venv/lib/python3.11/site-packages/requests/api.py":  false,
		"/usr/lib/python3/dist-packages/yaml/__init__.py":         false,
		"<frozen importlib._bootstrap>":                           false,
		"":                                                        false,
		"/opt/lib64/python3.12/asyncio/events.py":                 false,
		"/srv/lib/pythonic/app.py":                                true,
	} {
		if got := UserFile(file); got != want {
			t.Errorf("UserFile(%q) = %v, want %v", file, got, want)
		}
	}
}

func TestCulprit(t *testing.T) {
	lib := Frame{Function: "TemporaryFile", File: "/usr/lib/python3.11/tempfile.py", Line: 580}
	user := Frame{Function: "make_scratch", File: "/srv/app.py", Line: 12}
	if got, ok := Culprit([]Frame{{}, lib, user}); !ok || got != user {
		t.Errorf("culprit %+v, want the user's frame", got)
	}
	if got, ok := Culprit([]Frame{{}, lib}); !ok || got != lib {
		t.Errorf("no user frame: culprit %+v, want the innermost resolved one", got)
	}
	if _, ok := Culprit([]Frame{{}}); ok {
		t.Error("a culprit among unresolved frames")
	}
}
