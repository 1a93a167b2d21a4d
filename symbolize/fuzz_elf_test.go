package symbolize

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenModule feeds arbitrary bytes as a traced program's executable: the
// ELF, symbol, DWARF and .gopclntab readers must return an error or frames,
// never panic out.
func FuzzOpenModule(f *testing.F) {
	if self, err := os.ReadFile("/proc/self/exe"); err == nil && len(self) > 0 {
		f.Add(self[:min(len(self), 64<<10)])
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "exe")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c := NewCache(4)
		m, err := c.Module(path)
		if err != nil {
			if m != nil {
				t.Fatalf("module and error both returned: %v", err)
			}
			return
		}
		for _, va := range []uint64{0, 0x1000, 0x401000, ^uint64(0)} {
			for _, fr := range m.symbolize(va) {
				if fr.Line < 0 {
					t.Fatalf("negative line %d at %#x", fr.Line, va)
				}
			}
		}
	})
}
