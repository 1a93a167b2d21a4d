package python

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzInspect feeds arbitrary bytes as an interpreter executable: Inspect
// returns an image or an error, never panics.
func FuzzInspect(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	if b, err := os.ReadFile("/proc/self/exe"); err == nil {
		f.Add(b[:min(len(b), 32<<10)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "python3")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		im, err := Inspect(path)
		if (im == nil) == (err == nil) {
			t.Fatalf("image %v and error %v", im, err)
		}
	})
}
