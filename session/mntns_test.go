package session

import (
	"fmt"
	"os"
	"testing"
)

func TestDisplayPath(t *testing.T) {
	for in, want := range map[string]string{
		"/proc/123/root/usr/bin/python3": "/usr/bin/python3",
		"/usr/lib/libc.so.6":             "/usr/lib/libc.so.6",
		"/proc/self/root/x":              "/proc/self/root/x",
		"/proc/12/fd/3":                  "/proc/12/fd/3",
		"/proc/":                         "/proc/",
		"python":                         "python",
	} {
		if got := displayPath(in); got != want {
			t.Errorf("displayPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// A process in leaktrace's own mount namespace keeps its paths; one whose
// namespace differs gets /proc/PID/root in front, which displayPath removes.
func TestHostPath(t *testing.T) {
	s := &Session{}
	self := uint32(os.Getpid())
	if got := s.hostPath(self, "/usr/bin/true"); got != "/usr/bin/true" {
		t.Errorf("own namespace: %q", got)
	}
	s.mntns[42] = "mnt:[1]" // another namespace, as /proc/42/ns/mnt would say
	got := s.hostPath(42, "/usr/bin/true")
	if want := fmt.Sprintf("/proc/%d/root/usr/bin/true", 42); got != want {
		t.Errorf("other namespace: %q, want %q", got, want)
	}
	if displayPath(got) != "/usr/bin/true" {
		t.Errorf("displayPath(%q) = %q", got, displayPath(got))
	}
	if got := s.hostPath(42, "relative"); got != "relative" {
		t.Errorf("relative path changed: %q", got)
	}
}
