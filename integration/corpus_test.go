package integration

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

// TestCorpus runs testdata/fdcorpus once per fd family: each leaks exactly
// two handles of that family from a function named after it, after making
// and releasing others the family's own ways. The report must list exactly
// the fds the kernel had open at exit, with the right kinds, targets and
// creating function.
func TestCorpus(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(binaries(t), "corpus")
	cases := []struct {
		family string
		kinds  []string // of the two leaks, sorted
		target string   // a substring every leak's target has
	}{
		{"open", []string{"file", "file"}, "/tmp/corpus-"},
		{"socket", []string{"socket", "socket"}, ""},
		{"accept4", []string{"socket", "socket"}, "tcp 127.0.0.1:"},
		{"pipe", []string{"pipe", "pipe"}, "pipe:["},
		{"socketpair", []string{"socket", "socket"}, "unix stream"},
		{"dup", []string{"file", "file"}, "/dev/null"},
		{"eventfd", []string{"eventfd", "eventfd"}, "anon_inode:[eventfd]"},
		{"epoll", []string{"epoll", "epoll"}, "anon_inode:[eventpoll]"},
		{"memfd", []string{"memfd", "memfd"}, "memfd:corpus"},
		{"timerfd", []string{"timerfd", "timerfd"}, "anon_inode:[timerfd]"},
		{"signalfd", []string{"signalfd", "signalfd"}, "anon_inode:[signalfd]"},
		{"inotify", []string{"inotify", "inotify"}, "anon_inode:inotify"},
		{"fanotify", []string{"fanotify", "fanotify"}, "anon_inode:[fanotify]"},
		{"pidfd", []string{"file", "pidfd"}, ""},
		{"userfaultfd", []string{"anon", "anon"}, "anon_inode:[userfaultfd]"},
		{"perf_event", []string{"anon", "anon"}, "anon_inode:[perf_event]"},
		{"io_uring", []string{"io_uring", "io_uring"}, "anon_inode:[io_uring]"},
		{"open_by_handle_at", []string{"file", "file"}, "/tmp/corpus-"},
		{"scm_rights", []string{"eventfd", "file"}, ""},
		{"close_range", []string{"file", "file"}, "/dev/null"},
		{"exec", []string{"file", "file"}, "/dev/"},
		{"fork", []string{"file", "file"}, "/dev/"},
	}
	for _, c := range cases {
		t.Run(c.family, func(t *testing.T) {
			r, tr, code := runTraced(t, nil, bin, c.family)
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if len(tr.leaks) != 2 {
				t.Fatalf("program reported %d intentional leaks, want 2", len(tr.leaks))
			}
			if !r.Complete {
				t.Errorf("report incomplete: %v", r.Notes)
			}
			// A handle is listed under the process that made it: the CLONE_FILES
			// child's open is in the table it shared. Copies inherited at fork
			// (the fork and vfork children's) are not the program's own.
			var fds []int
			var kinds []string
			byFD := map[int]report.Leak{}
			for _, l := range r.Leaks {
				if l.FD < 0 || l.Inherited {
					continue
				}
				fds = append(fds, l.FD)
				kinds = append(kinds, l.Kind)
				byFD[l.FD] = l
			}
			slices.Sort(fds)
			slices.Sort(kinds)
			if !slices.Equal(fds, tr.open) {
				t.Errorf("leaked fds %v, kernel had open at exit %v", fds, tr.open)
			}
			if !slices.Equal(kinds, c.kinds) {
				t.Errorf("kinds %v, want %v", kinds, c.kinds)
			}
			if c.family == "socket" {
				// connect right after socket: the creation record waits in
				// the kernel and takes the addresses there.
				connected := false
				for _, l := range byFD {
					connected = connected || strings.HasPrefix(l.Target, "tcp 127.0.0.1:") && strings.Contains(l.Target, " -> 127.0.0.1:")
				}
				if !connected {
					t.Errorf("no leak names the connected socket's addresses: %+v", byFD)
				}
			}
			for fd, fn := range tr.leaks {
				l, ok := byFD[fd]
				if !ok {
					t.Errorf("fd %d (%s) not reported", fd, fn)
					continue
				}
				if !report.HasFunction(l.Stack, fn) {
					t.Errorf("fd %d: stack does not name %s: %+v", fd, fn, l.Stack)
				}
				// Calls that return an fd they did not create keep the
				// creator's stack.
				for _, notCreator := range []string{"update_signalfd", "dup_onto_itself"} {
					if report.HasFunction(l.Stack, notCreator) {
						t.Errorf("fd %d: creation taken from %s, which made nothing", fd, notCreator)
					}
				}
				if !strings.Contains(l.Target, c.target) {
					t.Errorf("fd %d: target %q, want it to contain %q", fd, l.Target, c.target)
				}
			}
		})
	}
}
