//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/bpf"
)

// ltObjects are the BPF programs and maps one leaktrace process holds, found
// through its fds, so that the kernel's own accounting of them can be read
// from outside: each program's run count and run time (with the kernel's
// stats on), the ring buffer's producer and consumer positions (bytes, 8-byte
// record headers and padding included), and the records the kernel side sent.
// Nothing of leaktrace is changed for it; other leaktrace processes on the
// host (tests, other tracers) are not counted.
type ltObjects struct {
	pid      int
	progs    []ltProg
	rings    [][]byte // each ring's consumer page then producer page
	counters *ebpf.Map
}

type ltProg struct {
	name string
	prog *ebpf.Program
}

// fdinfo keys of BPF programs (and of the links that attach them) and maps.
const (
	fdinfoProgID = "prog_id"
	fdinfoMapID  = "map_id"
)

// openObjects finds pid's BPF programs (its program and link fds) and its
// ring buffers and counters (its map fds) and opens each by id.
func openObjects(pid int) (*ltObjects, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing leaktrace's fds: %w", err)
	}
	o := &ltObjects{pid: pid}
	progIDs, mapIDs := map[uint64]bool{}, map[uint64]bool{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "anon_inode:bpf") {
			continue
		}
		info, err := readFdinfo(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if id, ok := info[fdinfoProgID]; ok {
			progIDs[id] = true
		}
		if id, ok := info[fdinfoMapID]; ok && target == "anon_inode:bpf-map" {
			mapIDs[id] = true
		}
	}
	fail := func(err error) (*ltObjects, error) {
		o.close()
		return nil, err
	}
	for id := range progIDs {
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue // detached meanwhile
		}
		name := fmt.Sprintf("prog %d", id)
		if info, err := p.Info(); err == nil && info.Name != "" {
			name = info.Name
		}
		o.progs = append(o.progs, ltProg{name, p})
	}
	page := os.Getpagesize()
	for id := range mapIDs {
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			continue
		}
		info, err := m.Info()
		switch {
		case err != nil:
			m.Close()
		case info.Type == ebpf.RingBuf:
			// The consumer page is mapped read-only here, the producer page
			// always is: this reads the positions, never moves them.
			ring, err := unix.Mmap(m.FD(), 0, 2*page, unix.PROT_READ, unix.MAP_SHARED)
			m.Close()
			if err != nil {
				return fail(fmt.Errorf("mapping the ring buffer's positions: %w", err))
			}
			o.rings = append(o.rings, ring)
		case info.Name == bpf.LeaktraceMapCounters && o.counters == nil:
			o.counters = m
		default:
			m.Close()
		}
	}
	if len(o.progs) == 0 {
		return fail(fmt.Errorf("leaktrace (pid %d) holds no BPF program", pid))
	}
	sort.Slice(o.progs, func(i, j int) bool { return o.progs[i].name < o.progs[j].name })
	return o, nil
}

func (o *ltObjects) close() {
	for _, p := range o.progs {
		p.prog.Close()
	}
	for _, r := range o.rings {
		unix.Munmap(r)
	}
	if o.counters != nil {
		o.counters.Close()
	}
}

// readFdinfo reads the numeric fields of an fdinfo file.
func readFdinfo(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[strings.TrimSpace(k)] = n
		}
	}
	return out, nil
}

// kSnapshot is the accounting at one moment.
type kSnapshot struct {
	progs    map[string]progStat // by program name, summed over same names
	produced uint64              // ring bytes produced, all rings
	consumed uint64
	sent     uint64 // records the kernel side put into the ring
	hasSent  bool
	cpu      time.Duration // the leaktrace process's CPU time
}

type progStat struct {
	runs uint64
	ns   uint64
}

func (o *ltObjects) snapshot() (kSnapshot, error) {
	s := kSnapshot{progs: map[string]progStat{}}
	for _, p := range o.progs {
		st, err := p.prog.Stats()
		if err != nil {
			return s, fmt.Errorf("reading %s's run time: %w", p.name, err)
		}
		ps := s.progs[p.name]
		ps.runs += st.RunCount
		ps.ns += uint64(st.Runtime)
		s.progs[p.name] = ps
	}
	s.produced, s.consumed = o.ringPositions()
	if o.counters != nil {
		var per []uint64
		if err := o.counters.Lookup(uint32(bpf.LeaktraceLtCounterLT_CNT_EVENTS), &per); err == nil {
			for _, v := range per {
				s.sent += v
			}
			s.hasSent = true
		}
	}
	var err error
	s.cpu, err = processCPU(o.pid)
	return s, err
}

// ringPositions sums the rings' producer and consumer positions.
func (o *ltObjects) ringPositions() (produced, consumed uint64) {
	page := os.Getpagesize()
	for _, r := range o.rings {
		consumed += *(*uint64)(unsafe.Pointer(&r[0]))
		produced += *(*uint64)(unsafe.Pointer(&r[page]))
	}
	return produced, consumed
}

// settle waits until the reader has consumed everything produced and its
// CPU time has stopped growing, so that a snapshot taken next holds the whole
// cost of the events sent so far. It gives up after limit.
func (o *ltObjects) settle(limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, _ := processCPU(o.pid)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		p, c := o.ringPositions()
		cpu, err := processCPU(o.pid)
		if err != nil {
			return
		}
		if p == c && cpu-last < time.Millisecond {
			return
		}
		last = cpu
	}
}

// kDelta is what happened between two snapshots.
type kDelta struct {
	progs    []progDelta // the programs that ran, most time first
	ns       uint64      // all programs' run time
	bytes    uint64      // ring bytes produced
	sent     uint64      // records sent
	hasSent  bool
	cpu      time.Duration
	produced bool // a ring buffer was found
}

type progDelta struct {
	Name  string `json:"name"`
	Runs  uint64 `json:"runs"`
	RunNs uint64 `json:"run_time_ns"`
}

func (a kSnapshot) to(b kSnapshot, rings bool) kDelta {
	d := kDelta{bytes: b.produced - a.produced, sent: b.sent - a.sent, hasSent: a.hasSent && b.hasSent,
		cpu: b.cpu - a.cpu, produced: rings}
	for name, pb := range b.progs {
		pa := a.progs[name]
		if pb.runs == pa.runs {
			continue
		}
		d.progs = append(d.progs, progDelta{name, pb.runs - pa.runs, pb.ns - pa.ns})
		d.ns += pb.ns - pa.ns
	}
	sort.Slice(d.progs, func(i, j int) bool {
		if d.progs[i].RunNs != d.progs[j].RunNs {
			return d.progs[i].RunNs > d.progs[j].RunNs
		}
		return d.progs[i].Name < d.progs[j].Name
	})
	return d
}

// processCPU is pid's CPU time, all its threads, dead ones included: the
// kernel's per-process CPU clock (what /proc/PID/stat's utime+stime sample at
// the tick, here to the nanosecond), with /proc/PID/stat as the fallback.
func processCPU(pid int) (time.Duration, error) {
	// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) of linux/posix-timers.h.
	clock := int32(^uint32(pid))<<3 | 2
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err == nil {
		return time.Duration(ts.Nano()), nil
	}
	return statCPU(pid)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times on Linux.
const clockTicks = 100

// maxStatTicks is the most ticks a Duration holds.
const maxStatTicks = uint64(1<<63-1) / uint64(time.Second/clockTicks)

func statCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of pid %d: %w", pid, err)
	}
	return parseStatCPU(string(data))
}

// parseStatCPU reads utime+stime (fields 14 and 15) of a /proc/PID/stat line;
// the comm before them may hold spaces and parentheses.
func parseStatCPU(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, errors.New("no comm in /proc/PID/stat")
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat has %d fields after comm", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat time %q: %w", s, err)
		}
		// A time no process can have used (over 290 years) would overflow
		// the Duration below.
		if n > maxStatTicks || ticks+n > maxStatTicks {
			return 0, fmt.Errorf("/proc/PID/stat time %q is out of range", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// kernelStats turns on the kernel's run time accounting of BPF programs
// (BPF_ENABLE_STATS: on while the returned closer is open, whatever
// kernel.bpf_stats_enabled says), falling back to the sysctl.
func kernelStats() (io.Closer, error) {
	if c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err == nil {
		return c, nil
	}
	s := enableBPFStats()
	if !s.on {
		return nil, fmt.Errorf("cannot turn on the kernel's BPF run time accounting (BPF_ENABLE_STATS or %s)", bpfStatsSysctl)
	}
	return closerFunc(s.restore), nil
}

type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }
