// Package incident keeps what a process held at the moment it failed to
// get an fd (EMFILE, ENFILE): its whole fd table by site, kind and age, its
// growing sites and its memory. Incidents are JSON files in a bounded
// directory, the oldest removed first, readable after the process is gone.
package incident

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

// Schema names this format (docs/incident-schema.md): minor versions only
// add fields; readers refuse other majors.
const Schema = "leaktrace.incident/v1"

// MaxBytes bounds an incident file read back: a table of a million fds.
const MaxBytes = 256 << 20

// Incident is one snapshot.
type Incident struct {
	Schema   string    `json:"schema"`
	Name     string    `json:"name"` // its file name in the directory
	Time     time.Time `json:"time"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid"`
	Comm     string    `json:"comm"`
	Exe      string    `json:"exe,omitempty"`
	Cgroup   string    `json:"cgroup,omitempty"`
	Errno    string    `json:"errno"`             // EMFILE or ENFILE
	Syscall  int       `json:"syscall,omitempty"` // the call that failed
	FDLimit  uint64    `json:"fd_limit"`          // soft RLIMIT_NOFILE; 0 unknown
	Open     int       `json:"open"`              // fds open at the failure
	Memory   *Memory   `json:"memory,omitempty"`
	Complete bool      `json:"complete"` // no event was lost before the snapshot
	// Kinds counts the open fds by kind; Ages by how long they were open.
	Kinds map[string]int `json:"kinds"`
	Ages  []AgeBucket    `json:"ages"`
	// Sites holds the fds by creation stack, most first; Growing the sites
	// whose outstanding handles grew most over the growth window.
	Sites   []Site `json:"sites"`
	Growing []Site `json:"growing"`
	FDs     []FD   `json:"fds"`
}

// Memory is the process's memory at the failure, in bytes.
type Memory struct {
	Resident uint64 `json:"resident_bytes"`
	Anon     uint64 `json:"anon_bytes"`
	File     uint64 `json:"file_bytes"`
	Shmem    uint64 `json:"shmem_bytes"`
	Virtual  uint64 `json:"virtual_bytes"`
}

// AgeBucket counts fds open at most UpTo seconds (the last one: longer).
type AgeBucket struct {
	Label string `json:"label"`
	Count int    `json:"count"`
}

// Site is one creation stack's fds in the process.
type Site struct {
	Key              string         `json:"key"` // "" for fds open before tracing
	Headline         report.Frame   `json:"headline"`
	Count            int            `json:"count"`
	Kinds            map[string]int `json:"kinds,omitempty"`
	OldestAgeSeconds float64        `json:"oldest_age_seconds"`
	// Growth over the agent's growth window, across live processes.
	Growth          int            `json:"growth"`
	GrowthPerSecond float64        `json:"growth_per_second"`
	Stack           []report.Frame `json:"stack,omitempty"`
}

// FD is one open fd.
type FD struct {
	FD         int32   `json:"fd"`
	Kind       string  `json:"kind"`
	Target     string  `json:"target,omitempty"`
	AgeSeconds float64 `json:"age_seconds"`
	Site       string  `json:"site,omitempty"`
}

// Summary is what a listing shows of an incident.
type Summary struct {
	Name     string    `json:"name"`
	Time     time.Time `json:"time"`
	PID      int       `json:"pid"`
	Comm     string    `json:"comm"`
	Errno    string    `json:"errno"`
	Open     int       `json:"open"`
	FDLimit  uint64    `json:"fd_limit"`
	TopSites []Site    `json:"top_sites"` // without stacks
}

// Summarize keeps the listing's part of inc, its n top sites without stacks.
func (inc *Incident) Summarize(n int) Summary {
	s := Summary{Name: inc.Name, Time: inc.Time, PID: inc.PID, Comm: inc.Comm, Errno: inc.Errno, Open: inc.Open, FDLimit: inc.FDLimit}
	for _, site := range inc.Sites[:min(n, len(inc.Sites))] {
		site.Stack = nil
		s.TopSites = append(s.TopSites, site)
	}
	return s
}

// TopSites names the sites holding most fds: "function (file:line) ×N; …".
func (inc *Incident) TopSites(n int) string {
	var parts []string
	for _, s := range inc.Sites[:min(n, len(inc.Sites))] {
		parts = append(parts, fmt.Sprintf("%s ×%d", SiteName(s), s.Count))
	}
	return strings.Join(parts, "; ")
}

// SiteName is "function (file:line)", or what is known of it.
func SiteName(s Site) string {
	if s.Key == "" {
		return "(open before tracing or no stack)"
	}
	h := s.Headline
	fn := h.Function
	if fn == "" {
		fn = fmt.Sprintf("%#x", h.Address)
	}
	switch {
	case h.File != "":
		return fmt.Sprintf("%s (%s:%d)", fn, h.File, h.Line)
	case h.Module != "":
		return fmt.Sprintf("%s (%s)", fn, h.Module)
	}
	return fn
}

// AgeLabels are the age buckets, by upper bound in seconds.
var ageBounds = []struct {
	label string
	upTo  float64
}{{"<10s", 10}, {"<1m", 60}, {"<10m", 600}, {"<1h", 3600}, {">=1h", 0}}

// AgeBuckets counts ages into the buckets.
func AgeBuckets(ages []float64) []AgeBucket {
	out := make([]AgeBucket, len(ageBounds))
	for i, b := range ageBounds {
		out[i].Label = b.label
	}
	for _, a := range ages {
		i := slices.IndexFunc(ageBounds, func(b struct {
			label string
			upTo  float64
		}) bool {
			return b.upTo == 0 || a < b.upTo
		})
		out[i].Count++
	}
	return out
}

// IsIncident reports whether data starts a JSON object of this format's
// family (any version), without decoding all of it.
func IsIncident(data []byte) bool {
	head := data[:min(len(data), 4096)]
	i := bytes.Index(head, []byte(`"schema"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(head[i+len(`"schema"`):], " \t\r\n:")
	return bytes.HasPrefix(rest, []byte(`"leaktrace.incident/`))
}

// Parse decodes an incident and checks that it is one this build reads.
func Parse(data []byte) (*Incident, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("incident larger than %d bytes", MaxBytes)
	}
	var inc Incident
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&inc); err != nil {
		return nil, fmt.Errorf("decoding incident: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding incident: data after the object")
	}
	if inc.Schema != Schema && !strings.HasPrefix(inc.Schema, Schema+".") {
		return nil, fmt.Errorf("unsupported incident schema %q (this leaktrace reads %s.x)", inc.Schema, Schema)
	}
	if inc.PID <= 0 || inc.Open < 0 || inc.Open > 1<<30 || len(inc.FDs) > 1<<30 {
		return nil, fmt.Errorf("incident: pid %d, open %d out of range", inc.PID, inc.Open)
	}
	for _, s := range inc.Sites {
		if s.Count < 0 {
			return nil, fmt.Errorf("incident: site %q count %d out of range", s.Key, s.Count)
		}
	}
	return &inc, nil
}
