package procfs

import (
	"os"
	"testing"

	"github.com/leaktrace/leaktrace/event"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		in      string
		want    Stat
		wantErr bool
	}{
		{"123 (cat) S 45 1 1", Stat{PID: 123, Comm: "cat", State: 'S', PPID: 45}, false},
		{"7 (a) b (c)) R 1 2", Stat{PID: 7, Comm: "a) b (c)", State: 'R', PPID: 1}, false},
		{"7 (x", Stat{}, true},
		{"(x) S 1", Stat{}, true},
		{"9 (x) S", Stat{}, true},
	}
	for _, tt := range tests {
		got, err := ParseStat(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseStat(%q) = %+v, %v; want %+v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestClassifyLink(t *testing.T) {
	tests := map[string]event.Kind{
		"socket:[123]":           event.KindSocket,
		"pipe:[9]":               event.KindPipe,
		"anon_inode:[eventfd]":   event.KindEventfd,
		"anon_inode:[eventpoll]": event.KindEpoll,
		"anon_inode:inotify":     event.KindInotify,
		"anon_inode:[pidfd]":     event.KindPidfd,
		"anon_inode:bpf-map":     event.KindAnon,
		"/memfd:x (deleted)":     event.KindMemfd,
		"/etc/passwd":            event.KindFile,
	}
	for link, want := range tests {
		if got, _ := ClassifyLink(link); got != want {
			t.Errorf("ClassifyLink(%q) = %v, want %v", link, got, want)
		}
	}
}

// The kernel's own table for this test process must match what FDs reads.
func TestFDsSelf(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds, err := FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, fd := range fds {
		if fd.FD == int32(f.Fd()) {
			found = fd.Target == "/dev/null" && fd.Kind == event.KindFile
		}
	}
	if !found {
		t.Fatalf("fd %d (/dev/null) not found as a file in %+v", f.Fd(), fds)
	}
	if _, err := FDs(1 << 30); err == nil {
		t.Fatal("FDs of a missing pid succeeded")
	}
}

func TestParseNoFileLimit(t *testing.T) {
	s := "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n"
	if n, err := ParseNoFileLimit(s); err != nil || n != 1024 {
		t.Fatalf("got %d, %v", n, err)
	}
	if _, err := ParseNoFileLimit("nothing"); err == nil {
		t.Fatal("no error for missing line")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("123 (cat) S 45 1 1")
	f.Add("1 ()) ) R 0")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseStat(s)
		if err == nil && (st.PID <= 0 || !isLetter(st.State)) {
			t.Fatalf("invalid stat %+v accepted from %q", st, s)
		}
	})
}

func FuzzParseTgid(f *testing.F) {
	f.Add("Name:\tx\nTgid:\t42\nPid:\t43\n")
	f.Add("Tgid: -1")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseTgid(s); err == nil && n <= 0 {
			t.Fatalf("ParseTgid(%q) = %d", s, n)
		}
	})
}

func TestTgidAndKernelThread(t *testing.T) {
	// A thread of this process (the Go runtime always has several)
	// resolves to this process.
	tasks, err := Tasks(os.Getpid())
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads of this process: %v, %v", tasks, err)
	}
	tid := int(tasks[len(tasks)-1])
	if tid == os.Getpid() {
		tid = int(tasks[0])
	}
	got, err := Tgid(tid)
	if err != nil || got != os.Getpid() {
		t.Errorf("Tgid(%d) = %d, %v; want %d", tid, got, err, os.Getpid())
	}
	if got, err := Tgid(os.Getpid()); err != nil || got != os.Getpid() {
		t.Errorf("Tgid(self) = %d, %v", got, err)
	}
	st, err := ReadStat(os.Getpid())
	if err != nil || st.KernelThread() || st.Gone() {
		t.Errorf("this process: %+v, %v: kernel thread or gone", st, err)
	}
	// kthreadd (pid 2) is a kernel thread wherever /proc shows the host.
	if st, err := ReadStat(2); err == nil && st.Comm == "kthreadd" && !st.KernelThread() {
		t.Errorf("kthreadd's flags %#x lack PF_KTHREAD", st.Flags)
	}
	if st, _ := ParseStat("7 (z) Z 1 7 7 0 -1 4194564 0 0"); !st.Gone() || st.KernelThread() {
		t.Errorf("a zombie's stat: %+v", st)
	}
}

func FuzzParseNoFileLimit(f *testing.F) {
	f.Add("Max open files 1024 4096 files\n")
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseNoFileLimit(s) })
}

// FuzzClassifyLink: any /proc/PID/fd link text gets a kind and a target that
// keeps what the link said.
func FuzzClassifyLink(f *testing.F) {
	for _, s := range []string{"/etc/passwd", "socket:[123]", "pipe:[9]", "anon_inode:[eventfd]", "/memfd:x (deleted)", "anon_inode:", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		kind, target := ClassifyLink(link)
		if kind == event.KindUnknown || kind == event.KindThread || kind == event.KindProcess {
			t.Fatalf("%q: kind %v", link, kind)
		}
		if len(target) > len(link) {
			t.Fatalf("%q: target %q longer than the link", link, target)
		}
	})
}

func TestParseMapRanges(t *testing.T) {
	r, err := ParseMapRanges("55d0a0000000-55d0a0001000 r--p 00000000 fd:01 123 /usr/bin/cat\n" +
		"7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n")
	if err != nil || len(r) != 3 || r[1] != (Range{0x7f0000000000, 0x7f0000021000}) {
		t.Fatalf("got %v, %v", r, err)
	}
	for _, bad := range []string{"x-1 r--p", "2000-1000 r--p", "1000-2000 r\n1000-3000 r", "1000"} {
		if _, err := ParseMapRanges(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	self, err := MapRanges(os.Getpid())
	if err != nil || len(self) < 5 {
		t.Fatalf("own maps: %d ranges, %v", len(self), err)
	}
}

func FuzzParseMapRanges(f *testing.F) {
	f.Add("7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n")
	f.Add("1000-2000 r\n3000-4000 r\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseMapRanges(s)
		if err != nil {
			return
		}
		for i, x := range r {
			if x.Start >= x.End || i > 0 && x.Start < r[i-1].End {
				t.Fatalf("range %d %+v out of order in %v", i, x, r)
			}
		}
	})
}
