package symbolize

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Mapping is one file-backed executable mapping in a process.
type Mapping struct {
	Start, End uint64 // [Start, End) virtual addresses
	Offset     uint64 // file offset mapped at Start
	Path       string
}

// AddressSpace is one process's executable mappings, sorted by Start and
// non-overlapping. It is not safe for concurrent use.
type AddressSpace struct {
	maps []Mapping
}

// Map adds m the way mmap with MAP_FIXED does: whatever m overlaps is replaced, and a
// mapping that m only partly covers is split, keeping the parts outside m.
func (s *AddressSpace) Map(m Mapping) {
	if m.End <= m.Start {
		return
	}
	// s.maps[i:j] are the mappings m overlaps; only the first can stick out on the
	// left and only the last on the right, because mappings never overlap each other.
	i := sort.Search(len(s.maps), func(i int) bool { return s.maps[i].End > m.Start })
	j := i
	for j < len(s.maps) && s.maps[j].Start < m.End {
		j++
	}
	repl := make([]Mapping, 0, 3)
	if i < j && s.maps[i].Start < m.Start {
		left := s.maps[i]
		left.End = m.Start
		repl = append(repl, left)
	}
	repl = append(repl, m)
	if i < j && s.maps[j-1].End > m.End {
		right := s.maps[j-1]
		right.Offset += m.End - right.Start
		right.Start = m.End
		repl = append(repl, right)
	}
	s.maps = slices.Replace(s.maps, i, j, repl...)
}

// Lookup returns the mapping that contains addr.
func (s *AddressSpace) Lookup(addr uint64) (Mapping, bool) {
	i := sort.Search(len(s.maps), func(i int) bool { return s.maps[i].End > addr })
	if i < len(s.maps) && s.maps[i].Start <= addr {
		return s.maps[i], true
	}
	return Mapping{}, false
}

// Clone returns an independent copy, as a forked child starts with its parent's
// mappings.
func (s *AddressSpace) Clone() *AddressSpace {
	return &AddressSpace{maps: append([]Mapping(nil), s.maps...)}
}

// Reset drops every mapping, as exec does.
func (s *AddressSpace) Reset() { s.maps = s.maps[:0] }

// Len returns the number of mappings.
func (s *AddressSpace) Len() int { return len(s.maps) }

// Mappings returns a copy of the mappings in address order.
func (s *AddressSpace) Mappings() []Mapping { return append([]Mapping(nil), s.maps...) }

// ParseMaps parses /proc/PID/maps text. It keeps only executable mappings backed by a
// file (a path starting with '/'): pseudo-mappings such as [vdso] carry no file to
// symbolize from. A " (deleted)" suffix is stripped: the path is still the best name.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		m, ok, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("maps line %d: %w", lineNo, err)
		}
		if ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading maps: %w", err)
	}
	return out, nil
}

// parseMapsLine parses "start-end perms offset dev inode   path".
func parseMapsLine(line string) (Mapping, bool, error) {
	if strings.TrimSpace(line) == "" {
		return Mapping{}, false, nil
	}
	var fields [5]string
	rest := line
	for k := range fields {
		rest = strings.TrimLeft(rest, " \t")
		end := strings.IndexAny(rest, " \t")
		if end < 0 {
			end = len(rest)
		}
		fields[k], rest = rest[:end], rest[end:]
		if fields[k] == "" {
			return Mapping{}, false, fmt.Errorf("too few fields in %q", line)
		}
	}
	path := strings.TrimLeft(rest, " \t")
	rng, perms, off := fields[0], fields[1], fields[2]
	lo, hi, ok := strings.Cut(rng, "-")
	if !ok {
		return Mapping{}, false, fmt.Errorf("bad address range %q", rng)
	}
	start, err := strconv.ParseUint(lo, 16, 64)
	if err != nil {
		return Mapping{}, false, fmt.Errorf("bad start address %q", lo)
	}
	end, err := strconv.ParseUint(hi, 16, 64)
	if err != nil || end < start {
		return Mapping{}, false, fmt.Errorf("bad end address %q", hi)
	}
	offset, err := strconv.ParseUint(off, 16, 64)
	if err != nil {
		return Mapping{}, false, fmt.Errorf("bad offset %q", off)
	}
	if len(perms) < 3 || perms[2] != 'x' || !strings.HasPrefix(path, "/") {
		return Mapping{}, false, nil
	}
	path = strings.TrimSuffix(path, " (deleted)")
	return Mapping{Start: start, End: end, Offset: offset, Path: path}, true, nil
}

// ReadMaps reads the executable file mappings of process pid.
func ReadMaps(pid int) ([]Mapping, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, fmt.Errorf("reading maps of pid %d: %w", pid, err)
	}
	defer f.Close()
	ms, err := ParseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("reading maps of pid %d: %w", pid, err)
	}
	return ms, nil
}
