//go:build linux

// Package agent is leaktrace's host daemon: it traces the host (or what its
// filters select), keeps each live process's tables and each call site's
// statistics, forgets a process once it exited and was reported, evaluates
// threshold alerts, and serves Prometheus metrics and the live report.
package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Config is everything --config.file can set. Flags set the same fields.
type Config struct {
	Thresholds Thresholds `yaml:"thresholds"`
	Filters    Filters    `yaml:"filters"`
	Sinks      Sinks      `yaml:"sinks"`
	Limits     Limits     `yaml:"limits"`
	Incidents  Incidents  `yaml:"incidents"`
}

// Incidents are the snapshots taken when a process fails to get an fd.
type Incidents struct {
	Dir string `yaml:"dir"` // "" keeps them in memory only
	Max int    `yaml:"max"` // files kept; the oldest is removed first
}

// Thresholds of the alerts.
type Thresholds struct {
	// FD usage against RLIMIT_NOFILE's soft limit, in percent.
	FDWarn     float64 `yaml:"fd_usage_warn_percent"`
	FDError    float64 `yaml:"fd_usage_error_percent"`
	FDCritical float64 `yaml:"fd_usage_critical_percent"`
	// A site whose outstanding count grew by GrowthMin or more over
	// GrowthWindow is leaking.
	GrowthMin    int           `yaml:"growth_min"`
	GrowthWindow time.Duration `yaml:"growth_window"`
	// A process with ZombiesMin children exited and unreaped for MinAge leaks
	// child processes.
	ZombiesMin int `yaml:"zombies_min"`
	// Handles outstanding longer than MinAge are leak suspects.
	MinAge time.Duration `yaml:"min_age"`
	// An EMFILE/ENFILE failure keeps its alert firing this long after the last.
	FDFailureHold time.Duration `yaml:"fd_failure_hold"`
	// A process's resident memory (RSS): absolute levels, and fractions of
	// the lowest memory limit of its cgroup and their ancestors when one is
	// set (v2 memory.max, else v1 memory.limit_in_bytes). The higher of the
	// two levels fires.
	MemWarn             ByteSize `yaml:"memory_warn_bytes"`
	MemError            ByteSize `yaml:"memory_error_bytes"`
	MemCritical         ByteSize `yaml:"memory_critical_bytes"`
	MemWarnFraction     float64  `yaml:"memory_warn_fraction"`
	MemErrorFraction    float64  `yaml:"memory_error_fraction"`
	MemCriticalFraction float64  `yaml:"memory_critical_fraction"`
	// Resident memory growing faster than this per hour in both halves of
	// the growth window is a leak.
	MemGrowthPerHour ByteSize `yaml:"memory_growth_per_hour"`
}

// Filters select what is traced; empty traces the whole host. A process
// matching any entry is traced, and so are its children.
type Filters struct {
	PIDs    []int    `yaml:"pids"`
	Comms   []string `yaml:"comms"`
	Cgroups []string `yaml:"cgroups"` // cgroup v2 paths, as in /proc/PID/cgroup: /system.slice/x.service
	Exes    []string `yaml:"exes"`    // executable paths
}

// Empty reports whether no filter is set.
func (f Filters) Empty() bool {
	return len(f.PIDs)+len(f.Comms)+len(f.Cgroups)+len(f.Exes) == 0
}

// Sinks receive alerts besides the structured log.
type Sinks struct {
	// ExternalLabels are added to every alert, as Prometheus's
	// external_labels are (cluster, region, …); instance, the host's name
	// by default, is always added.
	ExternalLabels map[string]string `yaml:"external_labels"`
	Webhook        *HTTPSink         `yaml:"webhook"`
	Alertmanager   *HTTPSink         `yaml:"alertmanager"`
}

// HTTPSink is an endpoint alerts are POSTed to.
type HTTPSink struct {
	URL      string        `yaml:"url"`
	Timeout  time.Duration `yaml:"timeout"`
	Attempts int           `yaml:"attempts"`
	// HTTPConfig is Prometheus's client configuration: basic auth, bearer
	// token, OAuth2, TLS, proxy, headers (as in prometheus.yml's
	// alertmanager_config.http_config).
	HTTPConfig promconfig.HTTPClientConfig `yaml:"http_config"`
}

// Client builds the sink's HTTP client from its HTTPConfig.
func (s *HTTPSink) Client(name string) (*http.Client, error) {
	return promconfig.NewClientFromConfig(s.HTTPConfig, "leaktrace_"+name)
}

// ValidateLabels checks alert label names and values as Prometheus would.
func ValidateLabels(l map[string]string) error {
	for k, v := range l {
		if !model.LegacyValidation.IsValidLabelName(k) || strings.HasPrefix(k, "__") {
			return fmt.Errorf("%q is not a label name (letters, digits and _, not starting with a digit or __)", k)
		}
		if v == "" || !model.LabelValue(v).IsValid() {
			return fmt.Errorf("label %s: %q is not a label value (non-empty UTF-8)", k, v)
		}
		switch k {
		case "alertname", "severity", "job":
			return fmt.Errorf("label %s is set by leaktrace itself", k)
		}
	}
	return nil
}

// Limits bound the agent's own state and its metrics' cardinality; the
// session still keeps the tables of every traced process.
type Limits struct {
	MaxProcesses int `yaml:"max_processes"` // processes with per-process state and series
	TopSites     int `yaml:"top_sites"`     // sites exported one by one; the rest are summed
	MaxStacks    int `yaml:"max_stacks"`    // distinct creation stacks kept
}

// DefaultConfig is the configuration with no file and no flags.
func DefaultConfig() Config {
	return Config{
		Thresholds: Thresholds{FDWarn: 70, FDError: 85, FDCritical: 95, GrowthMin: 50, GrowthWindow: 10 * time.Minute,
			ZombiesMin: 1, MinAge: time.Minute, FDFailureHold: 5 * time.Minute,
			MemWarn: 1536 << 20, MemError: 2048 << 20, MemCritical: 2560 << 20,
			MemWarnFraction: 0.8, MemErrorFraction: 0.9, MemCriticalFraction: 0.95, MemGrowthPerHour: 10 << 20},
		Limits:    Limits{MaxProcesses: 1000, TopSites: 20, MaxStacks: 20000},
		Incidents: Incidents{Dir: DefaultIncidentDir, Max: 100},
	}
}

// maxConfigBytes bounds what is read of a config file.
const maxConfigBytes = 1 << 20

// LoadConfig reads a YAML file over base. Unknown fields are errors.
func LoadConfig(path string, base Config) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return base, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return base, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return base, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigBytes)
	}
	cfg, err := ParseConfig(data, base)
	if err != nil {
		return base, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML over base strictly and validates the result.
func ParseConfig(data []byte, base Config) (Config, error) {
	cfg := base
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return base, yamlError(err)
	}
	if err := cfg.Validate(); err != nil {
		return base, err
	}
	return cfg, nil
}

// yamlError keeps yaml's message but drops its "yaml: " noise.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// Validate names the first field that is out of range.
func (c *Config) Validate() error {
	t := c.Thresholds
	for _, p := range []struct {
		name string
		v    float64
	}{{"fd_usage_warn_percent", t.FDWarn}, {"fd_usage_error_percent", t.FDError}, {"fd_usage_critical_percent", t.FDCritical}} {
		if !(p.v > 0 && p.v <= 100) {
			return fmt.Errorf("thresholds.%s: %v is not a percentage in (0, 100]", p.name, p.v)
		}
	}
	if !(t.FDWarn <= t.FDError && t.FDError <= t.FDCritical) {
		return fmt.Errorf("thresholds: fd_usage_warn_percent (%v) <= fd_usage_error_percent (%v) <= fd_usage_critical_percent (%v) must hold", t.FDWarn, t.FDError, t.FDCritical)
	}
	switch {
	case t.GrowthMin < 1:
		return fmt.Errorf("thresholds.growth_min: %d must be at least 1", t.GrowthMin)
	case t.GrowthWindow <= 0:
		return fmt.Errorf("thresholds.growth_window: %v must be positive", t.GrowthWindow)
	case t.ZombiesMin < 1:
		return fmt.Errorf("thresholds.zombies_min: %d must be at least 1", t.ZombiesMin)
	case t.MinAge < 0:
		return fmt.Errorf("thresholds.min_age: %v must not be negative", t.MinAge)
	case t.FDFailureHold <= 0:
		return fmt.Errorf("thresholds.fd_failure_hold: %v must be positive", t.FDFailureHold)
	}
	if !(t.MemWarn > 0 && t.MemWarn <= t.MemError && t.MemError <= t.MemCritical) {
		return fmt.Errorf("thresholds: 0 < memory_warn_bytes (%v) <= memory_error_bytes (%v) <= memory_critical_bytes (%v) must hold", t.MemWarn, t.MemError, t.MemCritical)
	}
	if !(t.MemWarnFraction > 0 && t.MemWarnFraction <= t.MemErrorFraction && t.MemErrorFraction <= t.MemCriticalFraction && t.MemCriticalFraction <= 1) {
		return fmt.Errorf("thresholds: 0 < memory_warn_fraction (%v) <= memory_error_fraction (%v) <= memory_critical_fraction (%v) <= 1 must hold", t.MemWarnFraction, t.MemErrorFraction, t.MemCriticalFraction)
	}
	if t.MemGrowthPerHour == 0 {
		return errors.New("thresholds.memory_growth_per_hour: must be positive")
	}
	if c.Incidents.Max < 1 || c.Incidents.Max > 100000 {
		return fmt.Errorf("incidents.max: %d must be 1..100000", c.Incidents.Max)
	}
	if d := c.Incidents.Dir; d != "" && !strings.HasPrefix(d, "/") {
		return fmt.Errorf("incidents.dir: %q must be an absolute path (or empty to keep incidents in memory)", d)
	}
	for _, pid := range c.Filters.PIDs {
		if pid <= 0 {
			return fmt.Errorf("filters.pids: %d is not a pid", pid)
		}
	}
	for _, comm := range c.Filters.Comms {
		if comm == "" || len(comm) > 15 {
			return fmt.Errorf("filters.comms: %q must be 1 to 15 bytes (the kernel's comm)", comm)
		}
	}
	for _, cg := range c.Filters.Cgroups {
		if !strings.HasPrefix(cg, "/") {
			return fmt.Errorf("filters.cgroups: %q must be a cgroup v2 path starting with /", cg)
		}
	}
	for _, exe := range c.Filters.Exes {
		if !strings.HasPrefix(exe, "/") {
			return fmt.Errorf("filters.exes: %q must be an absolute path", exe)
		}
	}
	for name, s := range map[string]*HTTPSink{"sinks.webhook": c.Sinks.Webhook, "sinks.alertmanager": c.Sinks.Alertmanager} {
		if s == nil {
			continue
		}
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.url: %q is not an http(s) URL", name, s.URL)
		}
		if s.Timeout < 0 || s.Attempts < 0 || s.Attempts > 20 {
			return fmt.Errorf("%s: timeout must not be negative and attempts must be 0..20", name)
		}
		if err := s.HTTPConfig.Validate(); err != nil {
			return fmt.Errorf("%s.http_config: %w", name, err)
		}
	}
	if err := ValidateLabels(c.Sinks.ExternalLabels); err != nil {
		return fmt.Errorf("sinks.external_labels: %w", err)
	}
	l := c.Limits
	switch {
	case l.MaxProcesses < 1:
		return fmt.Errorf("limits.max_processes: %d must be at least 1", l.MaxProcesses)
	case l.TopSites < 1 || l.TopSites > 1000:
		return fmt.Errorf("limits.top_sites: %d must be 1..1000", l.TopSites)
	case l.MaxStacks < 1:
		return fmt.Errorf("limits.max_stacks: %d must be at least 1", l.MaxStacks)
	}
	return nil
}
