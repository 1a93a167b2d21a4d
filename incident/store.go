package incident

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Store is a bounded set of incidents: files in a directory, or only in
// memory when it has none. Safe for concurrent use.
type Store struct {
	dir string
	max int

	mu      sync.Mutex
	recent  []Summary   // oldest first
	inMem   []*Incident // without a directory: the incidents themselves
	written uint64
	removed uint64
}

// namePattern is what Store writes; nothing else in the directory is touched.
var namePattern = regexp.MustCompile(`^\d{8}T\d{6}\.\d{9}Z-pid\d+(-\d+)?\.json$`)

// Open uses dir (created if absent), keeping at most max incidents; dir ""
// keeps them in memory. What dir already holds is listed, and trimmed to max.
func Open(dir string, max int) (*Store, error) {
	s := &Store{dir: dir, max: max}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("incident directory: %w", err)
	}
	names, err := s.files()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		inc, err := s.Read(n)
		if err != nil {
			continue // not ours to judge: left as it is, not listed
		}
		s.recent = append(s.recent, inc.Summarize(3))
	}
	s.trimLocked()
	return s, nil
}

// Dir is where incidents are written ("" in memory).
func (s *Store) Dir() string { return s.dir }

func (s *Store) files() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing incidents: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && namePattern.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out) // names start with the UTC time: oldest first
	return out, nil
}

// FileName is the name an incident of pid at t gets.
func FileName(t time.Time, pid int) string {
	return fmt.Sprintf("%s-pid%d.json", t.UTC().Format("20060102T150405.000000000Z"), pid)
}

// Add names inc, writes it (atomically: a reader never sees half a file) and
// removes the oldest past the bound. It returns the name.
func (s *Store) Add(inc *Incident) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc.Schema = Schema
	name := FileName(inc.Time, inc.PID)
	for i := 1; s.has(name); i++ {
		name = strings.TrimSuffix(FileName(inc.Time, inc.PID), ".json") + fmt.Sprintf("-%d.json", i)
	}
	inc.Name = name
	if s.dir == "" {
		s.inMem = append(s.inMem, inc)
	} else if err := s.write(inc); err != nil {
		return "", err
	}
	s.recent = append(s.recent, inc.Summarize(3))
	s.written++
	s.trimLocked()
	return name, nil
}

func (s *Store) has(name string) bool {
	return slices.ContainsFunc(s.recent, func(x Summary) bool { return x.Name == name })
}

func (s *Store) write(inc *Incident) error {
	f, err := os.CreateTemp(s.dir, ".incident-*")
	if err != nil {
		return fmt.Errorf("writing incident: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", " ")
	err = enc.Encode(inc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o640)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.dir, inc.Name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing incident %s: %w", inc.Name, err)
	}
	return nil
}

// trimLocked removes the oldest incidents past the bound.
func (s *Store) trimLocked() {
	for len(s.recent) > s.max {
		old := s.recent[0]
		s.recent = s.recent[1:]
		if s.dir == "" {
			s.inMem = s.inMem[1:]
		} else {
			os.Remove(filepath.Join(s.dir, old.Name))
		}
		s.removed++
	}
}

// List returns the incidents kept, newest first.
func (s *Store) List() []Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.recent)
	slices.Reverse(out)
	return out
}

// Counts returns how many incidents were written and removed since Open.
func (s *Store) Counts() (written, removed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written, s.removed
}

// Read returns the incident called name.
func (s *Store) Read(name string) (*Incident, error) {
	if !namePattern.MatchString(name) {
		return nil, fmt.Errorf("no incident %q", name)
	}
	if s.dir == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, inc := range s.inMem {
			if inc.Name == name {
				return inc, nil
			}
		}
		return nil, fmt.Errorf("no incident %q", name)
	}
	return ReadFile(filepath.Join(s.dir, name))
}

// ReadFile reads and parses one incident file.
func ReadFile(path string) (*Incident, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes: not an incident", path, MaxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	inc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inc, nil
}
