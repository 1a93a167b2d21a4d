package python

import (
	"bufio"
	"bytes"
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
		"interp_tstate_head": int(k.InterpTstateHead), "tstate_next": int(k.TstateNext),
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
