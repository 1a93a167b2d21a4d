//go:build linux

package agent

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/leaktrace/leaktrace/alert"
	"github.com/leaktrace/leaktrace/procfs"
)

// ByteSize is a size in bytes that configs and flags may write with a unit:
// 1572864000, 1.5GiB, 512MiB, 10MB.
type ByteSize uint64

var byteUnits = []struct {
	suffix string
	mult   float64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}

// ParseByteSize reads a size: a number of bytes, or a number with a unit.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v*mult >= 1<<63 {
		return 0, fmt.Errorf("%q is not a size (write bytes, or a number with KiB, MiB, GiB, kB, MB, GB)", s)
	}
	return ByteSize(v * mult), nil
}

func (b ByteSize) String() string {
	for _, u := range []struct {
		s string
		m uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if uint64(b) >= u.m {
			return strconv.FormatFloat(float64(b)/float64(u.m), 'g', 4, 64) + u.s
		}
	}
	return strconv.FormatUint(uint64(b), 10) + "B"
}

// Set and Type make a ByteSize a flag value.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (b *ByteSize) Type() string { return "size" }

// UnmarshalYAML takes a number of bytes or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	return b.Set(s)
}

// MarshalYAML writes the size with its unit.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// cgroupMountOnce finds cgroup v2's mount point once.
var cgroupMountOnce = sync.OnceValue(func() string {
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		if m := cgroup2MountPoint(string(b)); m != "" {
			return m
		}
	}
	return cgroupRoot
})

// cgroupMemoryMax returns the lowest memory.max of a cgroup v2 path and of
// its ancestors under root (a child cannot use more than any ancestor
// allows); 0 when none sets one or the memory controller is not on v2.
func cgroupMemoryMax(root, path string) uint64 {
	if path == "" {
		return 0
	}
	lowest := uint64(0)
	dir := filepath.Clean("/" + path)
	for dir != "/" {
		b, err := os.ReadFile(filepath.Join(root, dir, "memory.max"))
		if err == nil {
			s := strings.TrimSpace(string(b))
			if n, err := strconv.ParseUint(s, 10, 64); err == nil && (lowest == 0 || n < lowest) {
				lowest = n
			}
		}
		dir = filepath.Dir(dir)
	}
	return lowest
}

// memoryV1MountOnce finds the cgroup v1 memory controller's mount point
// once; "" when it is not on v1.
var memoryV1MountOnce = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	return memoryV1MountPoint(string(b))
})

// unlimitedV1 is where cgroup v1's memory.limit_in_bytes means no limit:
// the kernel shows "unlimited" as the largest page count in bytes, just
// under 2^63.
const unlimitedV1 = uint64(1) << 62

// cgroupMemoryLimitV1 returns the lowest memory.limit_in_bytes of a cgroup
// v1 path and of its ancestors under root (the memory controller's mount
// point); 0 when none sets one.
func cgroupMemoryLimitV1(root, path string) uint64 {
	if root == "" || path == "" {
		return 0
	}
	lowest := uint64(0)
	dir := filepath.Clean("/" + path)
	for {
		b, err := os.ReadFile(filepath.Join(root, dir, "memory.limit_in_bytes"))
		if err == nil {
			n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err == nil && n < unlimitedV1 && (lowest == 0 || n < lowest) {
				lowest = n
			}
		}
		if dir == "/" {
			return lowest
		}
		dir = filepath.Dir(dir)
	}
}

// memoryLevel is the alert level of a resident size: by the absolute
// thresholds and, when a cgroup limit is set, by its fractions; the higher.
func memoryLevel(th Thresholds, resident, limit uint64) string {
	rank := func(v float64, warn, err, crit float64) int {
		switch {
		case v >= crit:
			return 3
		case v >= err:
			return 2
		case v >= warn:
			return 1
		}
		return 0
	}
	r := rank(float64(resident), float64(th.MemWarn), float64(th.MemError), float64(th.MemCritical))
	if limit > 0 {
		r = max(r, rank(float64(resident)/float64(limit), th.MemWarnFraction, th.MemErrorFraction, th.MemCriticalFraction))
	}
	if r == 0 {
		return ""
	}
	return alert.Levels[r-1]
}

// sustainedRate is the lower of the growth rates (per second) of the
// window's two halves: a step that happened once does not make both halves
// grow; a steady leak does. ok is false until the window is full.
func (w *window) sustainedRate(span time.Duration) (rate float64, ok bool) {
	_, _, full := w.growth(span)
	if !full {
		return 0, false
	}
	first, last := w.s[0], w.s[len(w.s)-1]
	mid := first.t.Add(last.t.Sub(first.t) / 2)
	m := first
	for _, s := range w.s {
		if s.t.After(mid) {
			break
		}
		m = s
	}
	r1 := perSecond(m.n-first.n, m.t.Sub(first.t))
	r2 := perSecond(last.n-m.n, last.t.Sub(m.t))
	return min(r1, r2), true
}

func perSecond(d int, el time.Duration) float64 {
	if el <= 0 {
		return 0
	}
	return float64(d) / el.Seconds()
}

// sampleMemory reads the process's memory now and its cgroup's limit
// (cached in limits for this sample: many processes share a cgroup).
func (p *procState) sampleMemory(now time.Time, span time.Duration, limits map[string]uint64) {
	m, err := procfs.ReadMemory(int(p.pid))
	if err != nil {
		p.memOK = false // a zombie, or gone: no series rather than a zero
		return
	}
	lim, ok := limits[p.cgroup]
	if !ok {
		lim = cgroupMemoryMax(cgroupMountOnce(), p.cgroup)
		limits[p.cgroup] = lim
	}
	if lim == 0 && p.memCgroupV1 != "" {
		// A host whose memory controller is on cgroup v1 (hybrid, or v1
		// only) limits the process there.
		key := "v1:" + p.memCgroupV1
		if lim, ok = limits[key]; !ok {
			lim = cgroupMemoryLimitV1(memoryV1MountOnce(), p.memCgroupV1)
			limits[key] = lim
		}
	}
	p.mem, p.memOK, p.memLimit = m, true, lim
	p.resident.add(now, int(m.Resident), span)
}

// Alert names of memory.
const (
	AlertMemoryHigh   = "LeaktraceMemoryHigh"
	AlertMemoryGrowth = "LeaktraceMemoryGrowth"
)

// memoryRules are the memory alerts whose condition holds now.
func memoryRules(snap *Snapshot, th Thresholds) []alert.Alert {
	var out []alert.Alert
	for i := range snap.Processes {
		p := &snap.Processes[i]
		if !p.MemoryOK {
			continue
		}
		labels := func() map[string]string {
			return map[string]string{"pid": strconv.Itoa(int(p.PID)), "comm": p.Comm, "cgroup": p.Cgroup}
		}
		res := p.Memory.Resident
		if level := memoryLevel(th, res, p.MemoryLimit); level != "" {
			of := ""
			if p.MemoryLimit > 0 {
				of = fmt.Sprintf(", %.0f%% of its cgroup's memory limit %v", 100*float64(res)/float64(p.MemoryLimit), ByteSize(p.MemoryLimit))
			}
			out = append(out, alert.Alert{Name: AlertMemoryHigh, Level: level, Labels: labels(), Annotations: map[string]string{
				"summary": fmt.Sprintf("pid %d (%s) has %v resident (anon %v, file %v, shmem %v)%s", p.PID, p.Comm,
					ByteSize(res), ByteSize(p.Memory.Anon), ByteSize(p.Memory.File), ByteSize(p.Memory.Shmem), of),
				"exe": p.Exe,
			}})
		}
		perHour := p.MemorySustained * 3600
		if p.MemoryWindowFull && perHour > float64(th.MemGrowthPerHour) {
			out = append(out, alert.Alert{Name: AlertMemoryGrowth, Level: alert.LevelWarning, Labels: labels(), Annotations: map[string]string{
				"summary": fmt.Sprintf("pid %d (%s) resident memory grew %v/h or more over each half of the last %v (now %v)", p.PID, p.Comm,
					ByteSize(perHour), th.GrowthWindow, ByteSize(res)),
				"exe": p.Exe,
			}})
		}
	}
	return out
}
