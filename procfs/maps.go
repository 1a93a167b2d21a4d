package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Range is one line of /proc/PID/maps: [Start, End).
type Range struct {
	Start, End uint64
}

// MapRanges returns pid's mapped ranges, by address, as /proc/PID/maps lists
// them.
func MapRanges(pid int) ([]Range, error) {
	data, err := os.ReadFile(filepath.Join(pidDir(pid), "maps"))
	if err != nil {
		return nil, fmt.Errorf("reading mappings of pid %d: %w", pid, err)
	}
	return ParseMapRanges(string(data))
}

// ParseMapRanges reads the ranges of a /proc/PID/maps text ("start-end perms
// offset dev inode path", hex addresses). Lines come sorted from the kernel;
// one that is not, or that does not parse, is an error.
func ParseMapRanges(s string) ([]Range, error) {
	var out []Range
	for n, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		field, _, _ := strings.Cut(line, " ")
		a, b, ok := strings.Cut(field, "-")
		lo, err1 := strconv.ParseUint(a, 16, 64)
		hi, err2 := strconv.ParseUint(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || lo >= hi {
			return nil, fmt.Errorf("maps line %d: %q is not a range", n+1, field)
		}
		if len(out) > 0 && lo < out[len(out)-1].End {
			return nil, fmt.Errorf("maps line %d: %s overlaps or precedes the line before", n+1, field)
		}
		out = append(out, Range{lo, hi})
	}
	return out, nil
}
