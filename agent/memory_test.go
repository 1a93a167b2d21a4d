package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/leaktrace/leaktrace/procfs"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1572864000": 1572864000, "1.5GiB": 1536 << 20, "512MiB": 512 << 20,
		"10MB": 10e6, "2 GiB": 2 << 30, "0": 0, "7B": 7, "1KiB": 1024} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1GiB", "1.5 parsecs", "NaN", "1e30GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q): no error", bad)
		}
	}
	if s := ByteSize(1536 << 20).String(); s != "1.5GiB" {
		t.Errorf("String = %q", s)
	}
	cfg, err := ParseConfig([]byte("thresholds:\n  memory_warn_bytes: 1GiB\n  memory_growth_per_hour: 1048576\n"), DefaultConfig())
	if err != nil || cfg.Thresholds.MemWarn != 1<<30 || cfg.Thresholds.MemGrowthPerHour != 1<<20 {
		t.Errorf("config sizes: %+v, %v", cfg.Thresholds, err)
	}
	if _, err := ParseConfig([]byte("thresholds:\n  memory_warn_bytes: 3GiB\n"), DefaultConfig()); err == nil || !strings.Contains(err.Error(), "memory_warn_bytes") {
		t.Errorf("warn above error: %v", err)
	}
}

// writeCgroup makes a cgroup v2 tree under root: path -> memory.max text.
func writeCgroup(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for dir, max := range files {
		d := filepath.Join(root, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if max != "" {
			if err := os.WriteFile(filepath.Join(d, "memory.max"), []byte(max+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCgroupMemoryMaxIsTheLowestAncestor(t *testing.T) {
	root := t.TempDir()
	writeCgroup(t, root, map[string]string{"/k8s": "1000", "/k8s/pod": "max", "/k8s/pod/ctr": "5000",
		"/sys": "max", "/sys/svc": "300", "/free": "max", "/free/x": "", "/v1only": ""})
	for path, want := range map[string]uint64{"/k8s/pod/ctr": 1000, "/k8s/pod": 1000, "/sys/svc": 300, "/free/x": 0,
		"/v1only": 0, "": 0, "/gone": 0, "/sys/svc/../../k8s": 1000} {
		if got := cgroupMemoryMax(root, path); got != want {
			t.Errorf("cgroupMemoryMax(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestMemoryLevel(t *testing.T) {
	th := DefaultConfig().Thresholds
	const gib = 1 << 30
	for _, tc := range []struct {
		res, limit uint64
		want       string
	}{
		{gib, 0, ""}, {1536 << 20, 0, "warning"}, {2 * gib, 0, "error"}, {2560 << 20, 0, "critical"},
		{100 << 20, 1000 << 20, ""}, {800 << 20, 1000 << 20, "warning"}, {900 << 20, 1000 << 20, "error"},
		{950 << 20, 1000 << 20, "critical"},
		{2 * gib, 100 * gib, "error"}, // the absolute level, far under a large limit
	} {
		if got := memoryLevel(th, tc.res, tc.limit); got != tc.want {
			t.Errorf("memoryLevel(%d, limit %d) = %q, want %q", tc.res, tc.limit, got, tc.want)
		}
	}
}

func TestSustainedRate(t *testing.T) {
	span := 10 * time.Minute
	t0 := time.Unix(1000, 0)
	var steady, step window
	for i := 0; i <= 20; i++ {
		at := t0.Add(time.Duration(i) * 30 * time.Second)
		steady.add(at, 1000+i*30, span) // 1 per second
		n := 1000
		if i >= 15 {
			n = 100000 // one jump late in the window
		}
		step.add(at, n, span)
	}
	if r, ok := steady.sustainedRate(span); !ok || r < 0.99 || r > 1.01 {
		t.Errorf("steady: %v %v, want 1/s", r, ok)
	}
	if r, ok := step.sustainedRate(span); !ok || r != 0 {
		t.Errorf("one step: %v %v, want 0 (the first half did not grow)", r, ok)
	}
	var short window
	short.add(t0, 1, span)
	short.add(t0.Add(time.Minute), 1e9, span)
	if _, ok := short.sustainedRate(span); ok {
		t.Error("a window not yet full is sustained")
	}
}

// writeStatus writes a fake /proc/PID/status under procfs.Root.
func writeStatus(t *testing.T, pid uint32, anonKB, fileKB, shmemKB, virtKB uint64) {
	t.Helper()
	text := fmt.Sprintf("Name:\tsrv\nVmSize:\t%d kB\nVmRSS:\t%d kB\nRssAnon:\t%d kB\nRssFile:\t%d kB\nRssShmem:\t%d kB\n",
		virtKB, anonKB+fileKB+shmemKB, anonKB, fileKB, shmemKB)
	if err := os.WriteFile(filepath.Join(procfs.Root, fmt.Sprint(pid), "status"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gather collects the agent's metrics as Prometheus would.
func gather(t *testing.T, a *Agent) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(a))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily)
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func values(mf *dto.MetricFamily, label, value string) []float64 {
	var out []float64
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				out = append(out, m.GetGauge().GetValue())
			}
		}
	}
	return out
}

// A process whose memory grows steadily: its series are /proc's numbers,
// LeaktraceMemoryGrowth fires once the window is covered, LeaktraceMemoryHigh
// at the thresholds, and both resolve when it stops and shrinks.
func TestMemorySeriesAndAlerts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Thresholds.GrowthWindow = 10 * time.Minute
	cfg.Thresholds.MemWarn, cfg.Thresholds.MemError, cfg.Thresholds.MemCritical = 100<<20, 200<<20, 300<<20
	a, _ := testAgent(t, cfg)
	f := withFake(t, a, map[uint32]uint64{500: 1024})
	f.apply(openEv(500, 3, 1, 1, monotonicNow()))
	t0 := time.Now()
	// 60 MiB/h for 10 minutes: 10 MiB, sampled every 30 s.
	var at time.Time
	for i := 0; i <= 20; i++ {
		at = t0.Add(time.Duration(i) * 30 * time.Second)
		anon := uint64(90<<10) + uint64(i)*512 // kB
		writeStatus(t, 500, anon, 2048, 64, 4<<20)
		a.tick(at)
	}
	mfs := gather(t, a)
	for kind, want := range map[string]float64{"anon": float64((90<<10 + 20*512) << 10), "file": 2048 << 10, "shmem": 64 << 10} {
		if got := values(mfs["leaktrace_process_resident_memory_bytes"], "kind", kind); len(got) != 1 || got[0] != want {
			t.Errorf("resident %s = %v, want %v", kind, got, want)
		}
	}
	if got := values(mfs["leaktrace_process_virtual_memory_bytes"], "pid", "500"); len(got) != 1 || got[0] != 4<<30 {
		t.Errorf("virtual = %v", got)
	}
	if got := values(mfs["leaktrace_process_resident_memory_growth_bytes_per_second"], "pid", "500"); len(got) != 1 || got[0] < 17000 || got[0] > 18000 {
		t.Errorf("growth = %v, want 512 KiB per 30 s", got)
	}
	if _, ok := mfs["leaktrace_process_memory_limit_bytes"]; ok {
		t.Error("a memory limit series with no cgroup limit")
	}
	if got := firing(a); got != AlertMemoryGrowth+"/warning/500 "+AlertMemoryHigh+"/warning/500" {
		t.Errorf("firing %q", got)
	}
	// It stops growing and drops under warn: both resolve.
	for i := 1; i <= 21; i++ {
		writeStatus(t, 500, 10<<10, 2048, 64, 4<<20)
		a.tick(at.Add(time.Duration(i) * 30 * time.Second))
	}
	if got := firing(a); got != "" {
		t.Errorf("still firing %q", got)
	}
	// A zombie has no memory lines: no series rather than zeros.
	os.WriteFile(filepath.Join(procfs.Root, "500", "status"), []byte("Name:\tsrv\nState:\tZ (zombie)\n"), 0o644)
	a.tick(at.Add(time.Hour))
	if _, ok := gather(t, a)["leaktrace_process_resident_memory_bytes"]; ok {
		t.Error("series for a process whose memory is unreadable")
	}
}

func TestCgroupMemoryLimitV1IsTheLowestAncestor(t *testing.T) {
	root := t.TempDir()
	const unlimited = "9223372036854771712" // what v1 shows for no limit
	for dir, v := range map[string]string{"/": unlimited, "/docker": "2000", "/docker/ctr": "5000",
		"/sys": unlimited, "/sys/svc": "300", "/free": unlimited, "/free/x": "", "/bad": "lots"} {
		d := filepath.Join(root, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if v != "" {
			if err := os.WriteFile(filepath.Join(d, "memory.limit_in_bytes"), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for path, want := range map[string]uint64{"/docker/ctr": 2000, "/docker": 2000, "/sys/svc": 300, "/free/x": 0,
		"/": 0, "/bad": 0, "": 0, "/gone": 0} {
		if got := cgroupMemoryLimitV1(root, path); got != want {
			t.Errorf("cgroupMemoryLimitV1(%q) = %d, want %d", path, got, want)
		}
	}
	if got := cgroupMemoryLimitV1("", "/docker"); got != 0 {
		t.Errorf("no v1 memory hierarchy: %d, want 0", got)
	}
}
