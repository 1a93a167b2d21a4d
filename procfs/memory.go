package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is a process's memory as /proc/PID/status reports it, in bytes.
// Resident = Anon + File + Shmem (the kernel sums the same counters).
type Memory struct {
	Virtual  uint64 // VmSize
	Resident uint64 // VmRSS
	Anon     uint64 // RssAnon
	File     uint64 // RssFile
	Shmem    uint64 // RssShmem
}

// ReadMemory reads pid's memory from /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(filepath.Join(pidDir(pid), "status"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Memory{}, fmt.Errorf("reading memory of pid %d: %w", pid, ErrNoProcess)
		}
		return Memory{}, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	m, err := ParseMemory(string(b))
	if err != nil {
		return Memory{}, fmt.Errorf("parsing /proc/%d/status: %w", pid, err)
	}
	return m, nil
}

// ErrNoMemory means the status text has no memory lines: a kernel thread
// or a zombie, which own no address space.
var ErrNoMemory = errors.New("no memory lines (kernel thread or zombie)")

// ParseMemory reads the Vm* and Rss* lines of /proc/PID/status text
// ("VmRSS:	    1672 kB").
func ParseMemory(s string) (Memory, error) {
	var m Memory
	fields := map[string]*uint64{"VmSize": &m.Virtual, "VmRSS": &m.Resident, "RssAnon": &m.Anon, "RssFile": &m.File, "RssShmem": &m.Shmem}
	seen := 0
	for line := range strings.SplitSeq(s, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		dst := fields[name]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("malformed %s line %q", name, line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > 1<<53 {
			return Memory{}, fmt.Errorf("malformed %s value %q", name, f[0])
		}
		*dst = kb << 10
		seen++
	}
	if seen == 0 {
		return Memory{}, ErrNoMemory
	}
	if m.Resident == 0 {
		// Kernels before 4.5 have no Rss* lines; VmRSS alone is still right.
		m.Resident = m.Anon + m.File + m.Shmem
	}
	return m, nil
}
