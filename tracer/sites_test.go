//go:build linux

package tracer

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/symbolize"
)

// TestFileKey: the key Go teaches is the one the kernel computes
// (bpf/stack.h file_rule_of_vma): s_dev as major << 20 | minor, where stat
// gives glibc's encoding, and the modification time as seconds and
// nanoseconds, also before 1970.
func TestFileKey(t *testing.T) {
	for _, c := range []struct {
		f    symbolize.FileOffset
		dev  uint32
		sec  int64
		nsec uint32
	}{
		{symbolize.FileOffset{Dev: unix.Mkdev(254, 0), MtimeNano: 1777320873_000000123}, 254 << 20, 1777320873, 123},
		{symbolize.FileOffset{Dev: unix.Mkdev(259, 3), MtimeNano: 0}, 259<<20 | 3, 0, 0},
		{symbolize.FileOffset{Dev: unix.Mkdev(8, 300), MtimeNano: -1}, 8<<20 | 300, -1, 999999999},
	} {
		k := fileKey(c.f)
		if k.Dev != c.dev || k.MtimeSec != c.sec || k.MtimeNsec != c.nsec {
			t.Errorf("%+v: dev %#x mtime %d.%09d, want dev %#x mtime %d.%09d", c.f, k.Dev, k.MtimeSec, k.MtimeNsec, c.dev, c.sec, c.nsec)
		}
	}
}
