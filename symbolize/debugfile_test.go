package symbolize

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A stripped module's debug file found by .gnu_debuglink is used only when
// its build id is the module's: a debug file of another build (the host's
// glibc debug info beside a container's newer glibc) would name wrong.
func TestDebugFileBuildIDMustMatch(t *testing.T) {
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		skipUnlessCI(t, "objcopy not installed")
	}
	run := func(args ...string) {
		t.Helper()
		if b, err := exec.Command(objcopy, args...).CombinedOutput(); err != nil {
			t.Fatalf("objcopy %v: %v\n%s", args, err, b)
		}
	}
	mine := buildC(t, "-Wl,--build-id=sha1")
	other := buildC(t, "-O0", "-Wl,--build-id=sha1")
	dir := t.TempDir()
	stripped := filepath.Join(dir, "leak")
	debug := filepath.Join(dir, "leak.debug")

	for _, tc := range []struct {
		name     string
		from     string // the binary whose debug info is installed as leak.debug
		noteless bool   // its build id note removed
		want     bool
	}{
		{"same build", mine, false, true},
		{"another build", other, false, false},
		{"a debug file with no build id", other, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(debug)
			run("--only-keep-debug", tc.from, debug)
			if tc.noteless {
				run("--remove-section=.note.gnu.build-id", debug)
			}
			run("--strip-debug", "--add-gnu-debuglink="+debug, mine, stripped)
			ef, err := elf.Open(stripped)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			f := openDebugFile(ef, stripped)
			if f != nil {
				f.Close()
			}
			if got := f != nil; got != tc.want {
				t.Errorf("debug file used = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSplitProcRoot(t *testing.T) {
	for _, tc := range []struct{ in, root, rest string }{
		{"/proc/42/root/usr/lib/libc.so.6", "/proc/42/root", "/usr/lib/libc.so.6"},
		{"/usr/lib/libc.so.6", "", "/usr/lib/libc.so.6"},
		{"/proc/self/root/usr/lib/x", "", "/proc/self/root/usr/lib/x"},
		{"/proc/42/cwd/x", "", "/proc/42/cwd/x"},
	} {
		root, rest := splitProcRoot(tc.in)
		if root != tc.root || rest != tc.rest {
			t.Errorf("splitProcRoot(%q) = %q, %q; want %q, %q", tc.in, root, rest, tc.root, tc.rest)
		}
	}
}
