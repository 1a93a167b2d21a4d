package symbolize

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// markerLines returns the line numbers of the "LINE:name" markers in a source file.
func markerLines(t testing.TB, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := make(map[string]int)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if _, name, ok := strings.Cut(sc.Text(), "LINE:"); ok {
			lines[strings.Fields(name)[0]] = n
		}
	}
	return lines
}

// buildC compiles testdata/leak.c with the given extra flags.
func buildC(t testing.TB, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		skipUnlessCI(t, "gcc not installed")
	}
	src, err := filepath.Abs("testdata/leak.c")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "leak")
	args := append([]string{"-O2", "-g"}, flags...)
	args = append(args, "-o", out, src)
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return out
}

// buildGo builds testdata/leak.go.txt as a Go program with go build flags and returns the binary and the
// source path that its line table names.
func buildGo(t testing.TB, flags ...string) (bin, src string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		skipUnlessCI(t, "go not installed")
	}
	dir := t.TempDir()
	text, err := os.ReadFile("testdata/leak.go.txt")
	if err != nil {
		t.Fatal(err)
	}
	src = filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module leakprog\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "leakprog")
	cmd := exec.Command(goTool, append(append([]string{"build"}, flags...), "-o", bin, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin, src
}

// funcPC returns a pc inside this test binary's code.
func funcPC(t *testing.T) uint64 {
	t.Helper()
	pc, _, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	return uint64(pc)
}
