//go:build linux

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/procfs"
)

// ParseCgroup returns the cgroup v2 path in the text of /proc/PID/cgroup
// (its "0::/path" line), or "" when there is none (cgroup v1 only).
func ParseCgroup(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest
		}
	}
	return ""
}

// ParseMemoryCgroupV1 returns the path of the cgroup v1 hierarchy with the
// memory controller in the text of /proc/PID/cgroup (its "N:…memory…:/path"
// line), or "" when there is none (cgroup v2 only).
func ParseMemoryCgroupV1(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok || id == "0" {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for c := range strings.SplitSeq(ctrls, ",") {
			if c == "memory" {
				return path
			}
		}
	}
	return ""
}

// readCgroups reads pid's cgroup v2 path and its cgroup v1 memory path; ""
// for what is unknown.
func readCgroups(pid int) (v2, memV1 string) {
	b, err := os.ReadFile(filepath.Join(procfs.Root, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", ""
	}
	return ParseCgroup(string(b)), ParseMemoryCgroupV1(string(b))
}

// cgroupRoot is where cgroup v2 is mounted when /proc/self/mountinfo does
// not say.
var cgroupRoot = "/sys/fs/cgroup"

// cgroup2MountPoint returns the first cgroup2 mount point in the text of
// /proc/self/mountinfo, or "". Hosts in systemd's hybrid mode mount it at
// /sys/fs/cgroup/unified, under a tmpfs of v1 hierarchies.
func cgroup2MountPoint(mountinfo string) string {
	for line := range strings.SplitSeq(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" {
			return f[4]
		}
	}
	return ""
}

// memoryV1MountPoint is where mountinfo shows the cgroup v1 hierarchy of
// the memory controller (fstype cgroup, "memory" among its super options),
// or "".
func memoryV1MountPoint(mountinfo string) string {
	for line := range strings.SplitSeq(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		for o := range strings.SplitSeq(g[2], ",") {
			if o == "memory" {
				return f[4]
			}
		}
	}
	return ""
}

// CgroupID is the kernel's id of a cgroup v2 path: its directory's inode
// number, what bpf_get_current_cgroup_id returns.
func CgroupID(path string) (uint64, error) {
	root := cgroupRoot
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		if m := cgroup2MountPoint(string(b)); m != "" {
			root = m
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, path), &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, errors.New("not a cgroup directory")
	}
	return st.Ino, nil
}

// listPIDs returns every process in /proc.
func listPIDs() ([]int, error) {
	ents, err := os.ReadDir(procfs.Root)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out, nil
}

// sample is one observation of a count.
type sample struct {
	t time.Time
	n int
}

// window keeps a count's samples over a span, plus the last one before it
// as the baseline: growth is the count now minus the count a span ago.
type window struct{ s []sample }

func (w *window) add(t time.Time, n int, span time.Duration) {
	w.s = append(w.s, sample{t, n})
	// Keep one sample at or before the span's start as the baseline.
	drop := 0
	for drop+1 < len(w.s) && !w.s[drop+1].t.After(t.Add(-span)) {
		drop++
	}
	if drop > 0 {
		w.s = append(w.s[:0], w.s[drop:]...)
	}
}

// growth is the change over the window and the time it covers; full says
// whether the samples span the whole window.
func (w *window) growth(span time.Duration) (delta int, elapsed time.Duration, full bool) {
	if len(w.s) < 2 {
		return 0, 0, false
	}
	first, last := w.s[0], w.s[len(w.s)-1]
	elapsed = last.t.Sub(first.t)
	return last.n - first.n, elapsed, elapsed >= span
}

// rate is the change per second over the window (0 before two samples).
func (w *window) rate(span time.Duration) float64 {
	d, el, _ := w.growth(span)
	if el <= 0 {
		return 0
	}
	return float64(d) / el.Seconds()
}

// idle reports whether every sample is zero: the window can be forgotten.
func (w *window) idle() bool {
	for _, s := range w.s {
		if s.n != 0 {
			return false
		}
	}
	return true
}
