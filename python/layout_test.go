package python

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// headerOffsets compiles testdata/offsets.c against an installed CPython's
// headers and returns what it prints: each field's offsetof.
func headerOffsets(t *testing.T, include string) map[string]int {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "offsets")
	cmd := exec.Command("gcc", "-w", "-I", include, "-I", filepath.Join(include, "internal"), "-o", bin, "testdata/offsets.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compiling offsets.c against %s: %v\n%s", include, err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		v, _ := strconv.Atoi(f[1])
		m[f[0]] = v
	}
	return m
}

func layoutFields(l *Layout) map[string]int {
	k := l.Kernel
	m := map[string]int{
		"rt_finalizing": int(k.RtFinalizing), "rt_interp_head": int(k.RtInterpHead),
		"interp_tstate_head": int(k.InterpTstateHead), "tstate_next": int(k.TstateNext), "tstate_prev": int(k.TstatePrev),
		"tstate_native_tid": int(k.TstateNativeTid), "tstate_frame": int(k.TstateFrame),
		"frame_code": int(k.FrameCode), "frame_instr": int(k.FrameInstr), "frame_previous": int(k.FramePrevious),
		"frame_marker": int(k.FrameMarker), "code_firstlineno": int(k.CodeFirstlineno),
		"code_header": l.CodeHeader, "code_filename": l.CodeFilename, "code_qualname": l.CodeQualname,
		"code_linetable": l.CodeLinetable, "ob_type": l.ObType, "var_size": l.VarSize, "bytes_data": l.BytesData,
		"str_length": l.StrLength, "str_state": l.StrState, "str_ascii_data": l.StrASCIIData,
		"str_compact_data": l.StrCompactDat,
	}
	if k.Flags&layoutCFrame != 0 {
		m["cframe_current"] = int(k.CframeCurrent)
	}
	if k.Flags&layoutShim != 0 {
		m["marker_min"] = int(k.MarkerMin)
	}
	return m
}

// TestLayoutsMatchHeaders: each table, and what _Py_DebugOffsets gives for
// 3.13+, equals offsetof in that version's own headers (pyenv's builds).
func TestLayoutsMatchHeaders(t *testing.T) {
	// Machines of this project's kind have pyenv in /root/.pyenv.
	root := "/root/.pyenv"
	for _, d := range []string{os.ExpandEnv("$HOME/.pyenv"), os.Getenv("PYENV_ROOT")} {
		if fi, err := os.Stat(filepath.Join(d, "versions")); d != "" && err == nil && fi.IsDir() {
			root = d
		}
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("gcc is needed in CI")
		}
		t.Skip("no gcc")
	}
	tested := 0
	for _, minor := range []string{"3.11", "3.12", "3.13"} {
		dirs, _ := filepath.Glob(filepath.Join(root, "versions", minor+".*"))
		for _, dir := range dirs {
			include := filepath.Join(dir, "include", "python"+minor)
			if _, err := os.Stat(include); err != nil {
				continue
			}
			t.Run(filepath.Base(dir), func(t *testing.T) {
				want := headerOffsets(t, include)
				lib := filepath.Join(dir, "lib", "libpython"+minor+".so.1.0")
				im, err := Inspect(lib)
				if err != nil {
					t.Fatalf("inspecting %s: %v", lib, err)
				}
				got := layoutFields(im.layout)
				for name, w := range want {
					if g, ok := got[name]; !ok || g != w {
						t.Errorf("%s: layout has %d, headers say %d", name, g, w)
					}
				}
			})
			tested++
		}
	}
	if tested == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no pyenv CPython 3.11-3.13 with headers under %s", root)
		}
		t.Skip("no pyenv CPython with headers")
	}
}

// The kernel reads a frame's fields, and a code object's, in one read each:
// the windows cover every field (at its offset inside the window) for each
// version's layout, and a layout with fields too far apart is refused.
func TestKernelWindows(t *testing.T) {
	layouts := map[string]Layout{"3.11": layout311, "3.12": layout312}
	for _, minor := range []uint32{13, 14} {
		l, _, err := debugOffsetsLayout(debugOffsets(minor, 0))
		if err != nil {
			t.Fatal(err)
		}
		layouts[fmt.Sprintf("3.%d (debug offsets)", minor)] = *l
	}
	for name, l := range layouts {
		k := l.Kernel
		if err := setWindows(&k); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		inside := func(what string, win uint16, n uint8, off, size uint16) {
			if off < win || int(off-win)+int(size) > int(n) || n == 0 {
				t.Errorf("%s: %s at %d (%d bytes) outside the window [%d, +%d)", name, what, off, size, win, n)
			}
		}
		inside("f_code", k.FrameWin, k.FrameWinLen, k.FrameCode, 8)
		inside("previous", k.FrameWin, k.FrameWinLen, k.FramePrevious, 8)
		inside("instr", k.FrameWin, k.FrameWinLen, k.FrameInstr, 8)
		inside("marker", k.FrameWin, k.FrameWinLen, k.FrameMarker, 1)
		inside("co_firstlineno", k.CodeWin, k.CodeWinLen, k.CodeFirstlineno, 4)
		inside("co_filename", k.CodeWin, k.CodeWinLen, k.CodeIdent, 8)
		inside("tstate prev", k.TstateWin, k.TstateWinLen, k.TstatePrev, 8)
		inside("tstate native_thread_id", k.TstateWin, k.TstateWinLen, k.TstateNativeTid, 8)
		inside("tstate frame", k.TstateWin, k.TstateWinLen, k.TstateFrame, 8)
	}
	k := layout312.Kernel
	k.FrameMarker = 300
	if err := setWindows(&k); err == nil {
		t.Errorf("a frame window of %d bytes was accepted", 301)
	}
}
