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
	s.mntns[42] = mountNS{ns: "mnt:[1]", root: "/"} // another namespace, as /proc/42/ns/mnt would say
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
	// Chrooted inside its namespace: the kernel's path runs up to the
	// namespace's root, /proc/PID/root is the chroot.
	s.mntns[43] = mountNS{ns: "mnt:[1]", root: "/srv/roots/forky"}
	if got, want := s.hostPath(43, "/srv/roots/forky/usr/lib/libc.so.6"), "/proc/43/root/usr/lib/libc.so.6"; got != want {
		t.Errorf("chroot in another namespace: %q, want %q", got, want)
	}
	if got, want := s.hostPath(43, "/srv/roots/forkyx/lib"), "/proc/43/root/srv/roots/forkyx/lib"; got != want {
		t.Errorf("a sibling of the root: %q, want %q", got, want)
	}
}

// A process gone before Go read its records has no /proc/PID/root: its
// files are read through a process of its namespace that was alive when Go
// looked (a container's exec probe, through the container's main process),
// until that one exits or execs.
func TestHostPathOfAGoneProcess(t *testing.T) {
	s := &Session{}
	s.hostPath(uint32(os.Getpid()), "/") // learns leaktrace's own namespace
	main := uint32(os.Getpid())
	// Another namespace, as the exec record and /proc/PID/root would say:
	// main alive (its root read), 7 gone before Go looked.
	s.mntns[main] = mountNS{ns: "mnt:[9]", root: "/srv/ct"}
	s.nsLive = map[string]uint32{"mnt:[9]": main}
	s.mntns[7] = mountNS{ns: "mnt:[9]"}
	if got, want := s.hostPath(7, "/srv/ct/usr/lib/libc.so.6"), fmt.Sprintf("/proc/%d/root/usr/lib/libc.so.6", main); got != want {
		t.Errorf("gone process: %q, want %q", got, want)
	}
	s.forgetMountNS(main) // it exited
	if got, want := s.hostPath(7, "/srv/ct/usr/lib/libc.so.6"), "/proc/7/root/srv/ct/usr/lib/libc.so.6"; got != want {
		t.Errorf("after the live one exited: %q, want %q", got, want)
	}
	// learnMountNS keeps a process whose root it could read.
	s.learnMountNS(main, "mnt:[10]")
	if s.nsLive["mnt:[10]"] != main {
		t.Errorf("a live process of namespace mnt:[10] is not kept: %v", s.nsLive)
	}
}
