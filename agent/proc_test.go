package agent

import (
	"testing"
	"time"
)

func TestParseCgroup(t *testing.T) {
	tests := map[string]string{
		"0::/system.slice/nginx.service\n":                                      "/system.slice/nginx.service",
		"12:pids:/user.slice\n0::/kubepods.slice/kubepods-pod1.slice/cri-abc\n": "/kubepods.slice/kubepods-pod1.slice/cri-abc",
		"3:cpu:/x\n": "",
		"":           "",
	}
	for in, want := range tests {
		if got := ParseCgroup(in); got != want {
			t.Errorf("ParseCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add("0::/a/b\n")
	f.Add("1:name=systemd:/x\n0::/\n")
	f.Fuzz(func(t *testing.T, s string) {
		if got := ParseCgroup(s); len(got) > len(s) {
			t.Fatalf("path %q longer than its input", got)
		}
	})
}

func TestWindowGrowth(t *testing.T) {
	var w window
	t0 := time.Unix(0, 0)
	span := 10 * time.Second
	for i := range 30 { // one sample a second, growing by 2
		w.add(t0.Add(time.Duration(i)*time.Second), 2*i, span)
	}
	d, el, full := w.growth(span)
	if d != 20 || el != span || !full {
		t.Fatalf("growth = %d over %v (full %v), want 20 over 10s", d, el, full)
	}
	if r := w.rate(span); r != 2 {
		t.Fatalf("rate = %v, want 2", r)
	}
	if len(w.s) != 11 {
		t.Fatalf("kept %d samples, want 11 (bounded by the span)", len(w.s))
	}
	var short window
	short.add(t0, 1, span)
	short.add(t0.Add(time.Second), 5, span)
	if _, _, full := short.growth(span); full {
		t.Fatal("two samples a second apart fill a 10s window")
	}
	if short.idle() {
		t.Fatal("a window with counts is idle")
	}
}

func TestCgroup2MountPoint(t *testing.T) {
	tests := map[string]string{
		// cgroup v2 only (unified mode)
		"29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n": "/sys/fs/cgroup",
		// systemd's hybrid mode: v1 hierarchies on a tmpfs, v2 under unified
		"31 24 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
			"33 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
			"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n": "/sys/fs/cgroup/unified",
		// v1 only
		"33 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n": "",
		"": "",
	}
	for in, want := range tests {
		if got := cgroup2MountPoint(in); got != want {
			t.Errorf("cgroup2MountPoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMemoryCgroupV1(t *testing.T) {
	tests := map[string]string{
		// this machine's kind: systemd hybrid, memory on v1
		"12:memory:/leaktrace-test\n11:pids:/\n1:name=systemd:/user.slice\n0::/user.slice\n": "/leaktrace-test",
		// controllers co-mounted on one hierarchy
		"4:cpu,cpuacct,memory:/docker/abc\n": "/docker/abc",
		// v2 only: no v1 memory hierarchy
		"0::/system.slice/nginx.service\n": "",
		// "memory" as part of a name is no controller
		"2:name=memoryless:/x\n": "",
		"":                       "",
		"garbage":                "",
	}
	for in, want := range tests {
		if got := ParseMemoryCgroupV1(in); got != want {
			t.Errorf("ParseMemoryCgroupV1(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseMemoryCgroupV1(f *testing.F) {
	f.Add("12:memory:/a\n0::/\n")
	f.Add("4:cpu,memory:/b\n")
	f.Fuzz(func(t *testing.T, s string) {
		if got := ParseMemoryCgroupV1(s); len(got) > len(s) {
			t.Fatalf("path %q longer than its input", got)
		}
	})
}

func TestMemoryV1MountPoint(t *testing.T) {
	tests := map[string]string{
		"31 24 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
			"33 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
			"36 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
			"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n": "/sys/fs/cgroup/memory",
		"36 31 0:32 / /cg/mem rw - cgroup cgroup rw,cpu,memory\n": "/cg/mem",
		// v2 only
		"29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n": "",
		"36 31 0:32 / /x rw - cgroup cgroup\n":                             "",
		"":                                                                 "",
	}
	for in, want := range tests {
		if got := memoryV1MountPoint(in); got != want {
			t.Errorf("memoryV1MountPoint(%q) = %q, want %q", in, got, want)
		}
	}
}
