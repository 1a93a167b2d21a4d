//go:build linux

// Command bench measures leaktrace's cost and prints a markdown table of the
// figures next to their targets, the same table the README's Performance
// section carries. It runs as root: it loads leaktrace's BPF programs.
//
//	sudo make bench          # full sizes, 3 repetitions, median
//	sudo make bench-smoke    # reduced sizes, one repetition (BENCH_SMOKE=1)
//
// It reports and never fails on a figure; it fails only when a measurement
// cannot be taken.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	leaktrace    string
	versus       string // another leaktrace binary the breakdown takes turns with
	goTool       string
	jsonPath     string
	smoke        bool
	installPeers bool
	repeat       int
	only         map[string]bool // steps to run; empty: all
}

// sizes are the workloads' sizes; smoke runs use smaller ones.
type sizes struct {
	churn      int           // open+close pairs
	sockets    int           // socketpair+close rounds
	held       int           // fds held during the held-fds churn
	straceDiv  int           // strace runs churn/straceDiv: under ptrace a syscall costs ~20x
	benchtime  string        // BenchmarkApplyOpenClose's -benchtime
	abRequests int           // requests of each ab run against nginx
	paced      time.Duration // each paced churn of the agent's CPU rows
	execs      time.Duration // each exec churn of the agent's rows
}

var (
	fullSizes = sizes{churn: 200_000, sockets: 100_000, held: 100_000, straceDiv: 10, benchtime: "1s",
		abRequests: 20_000, paced: 3 * time.Second, execs: 10 * time.Second}
	smokeSizes = sizes{churn: 20_000, sockets: 10_000, held: 5_000, straceDiv: 10, benchtime: "200000x",
		abRequests: 2_000, paced: 500 * time.Millisecond, execs: time.Second}
)

type bench struct {
	cfg  config
	size sizes
	root string // the module's directory
	dir  string // temp dir: the workload, its output, reports
	res  *results

	churn          string // the compiled workload
	cache          map[string]stat
	attachExit     chan error
	mountedTracefs bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	flag.StringVar(&cfg.leaktrace, "leaktrace", "bin/leaktrace", "the leaktrace binary to measure (make build)")
	flag.StringVar(&cfg.versus, "versus", "", "the breakdown also measures this leaktrace binary, taking turns with -leaktrace, and compares the two (wall time swings too much on a VM for two separate runs to tell)")
	flag.StringVar(&cfg.goTool, "go", "go", "the go command, to build the aggregator's benchmarks")
	flag.StringVar(&cfg.jsonPath, "json", "bin/bench-results.json", "write the results as JSON to this file")
	flag.BoolVar(&cfg.smoke, "smoke", os.Getenv("BENCH_SMOKE") == "1", "reduced sizes and one repetition, under a minute (also BENCH_SMOKE=1)")
	flag.BoolVar(&cfg.installPeers, "install-peers", false, "apt-get install strace and bpftrace when missing")
	flag.IntVar(&cfg.repeat, "repeat", 3, "runs per timing; the median is shown")
	only := flag.String("only", "", "run only these comma-separated steps: "+strings.Join(stepNames(), ", "))
	flag.Parse()
	if *only != "" {
		cfg.only = map[string]bool{}
		for _, name := range strings.Split(*only, ",") {
			if !slices.Contains(stepNames(), name) {
				return fmt.Errorf("-only: no step %q (steps: %s)", name, strings.Join(stepNames(), ", "))
			}
			cfg.only[name] = true
		}
	}
	if cfg.repeat < 1 {
		return errors.New("-repeat must be at least 1")
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root to load leaktrace's BPF programs (run it with sudo)")
	}

	b := &bench{cfg: cfg, size: fullSizes, cache: map[string]stat{}}
	if cfg.smoke {
		b.size, b.cfg.repeat = smokeSizes, 1
	}
	root, err := moduleRoot(cfg.goTool)
	if err != nil {
		return err
	}
	b.root = root
	if b.cfg.leaktrace, err = filepath.Abs(cfg.leaktrace); err != nil {
		return fmt.Errorf("resolving the leaktrace path: %w", err)
	}
	if _, err := os.Stat(b.cfg.leaktrace); err != nil {
		return fmt.Errorf("no leaktrace binary at %s (make build): %w", b.cfg.leaktrace, err)
	}
	if b.cfg.versus != "" {
		if b.cfg.versus, err = filepath.Abs(b.cfg.versus); err != nil {
			return fmt.Errorf("resolving the -versus path: %w", err)
		}
		if _, err := os.Stat(b.cfg.versus); err != nil {
			return fmt.Errorf("-versus: no leaktrace binary at %s: %w", b.cfg.versus, err)
		}
	}
	if b.dir, err = os.MkdirTemp("", "leaktrace-bench-"); err != nil {
		return fmt.Errorf("creating a temp dir: %w", err)
	}
	defer b.close()
	if err := b.compileChurn(); err != nil {
		return err
	}
	b.res = newResults(cfg.smoke)

	for _, step := range b.steps() {
		if cfg.only != nil && !cfg.only[step.name] {
			continue
		}
		start := time.Now()
		if err := step.run(b.res); err != nil {
			return err
		}
		logf("step %s took %.1f s", step.name, time.Since(start).Seconds())
	}
	if err := b.res.writeMarkdown(os.Stdout); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	path := cfg.jsonPath
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	if err := b.res.writeJSON(path); err != nil {
		return err
	}
	logf("results written to %s", path)
	return nil
}

type step struct {
	name string
	run  func(*results) error
}

// steps are the measurements in the table's order.
func (b *bench) steps() []step {
	return []step{
		{"run", b.overhead}, {"mmap", b.mmapOverhead}, {"stack", b.stackCost}, {"python", b.pythonOverhead}, {"peers", b.peerOverhead},
		{"untraced", b.hostSlowdown}, {"lost", b.lostEvents}, {"ready", b.attachReady}, {"aggregator", b.goBench},
		{"breakdown", b.breakdown}, {"agent", b.agentHost},
	}
}

func stepNames() []string {
	var names []string
	for _, s := range (&bench{}).steps() {
		names = append(names, s.name)
	}
	return names
}

func (b *bench) close() {
	if b.mountedTracefs {
		if err := unix.Unmount(tracefs, 0); err != nil {
			logf("unmounting the tracefs this run mounted: %v", err)
		}
	}
	os.RemoveAll(b.dir)
}

func newResults(smoke bool) *results {
	r := &results{Date: time.Now().Format("2006-01-02"), CPUs: runtime.NumCPU(), Smoke: smoke,
		Command: "make bench", Samples: map[string][]float64{}}
	if smoke {
		r.Command = "make bench-smoke"
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	// The CPU flag a hypervisor sets: a VM's syscalls cost more, which
	// matters when reading the ratios.
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		r.VM = strings.Contains(string(data), " hypervisor")
	}
	return r
}

func moduleRoot(goTool string) (string, error) {
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module (go env GOMOD): %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run bench inside leaktrace's module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

// logf reports progress on stderr; stdout carries only the table.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
