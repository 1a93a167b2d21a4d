//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// goBench runs the aggregator's Go benchmarks: throughput of open/close pairs
// and heap per outstanding handle.
func (b *bench) goBench(res *results) error {
	bin := filepath.Join(b.dir, "aggregator.test")
	build := exec.Command(b.cfg.goTool, "test", "-c", "-o", bin, "./aggregator/")
	build.Dir = b.root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the aggregator's benchmarks: %w", err)
	}

	// One core (GOMAXPROCS=1): the target is per core, and Apply runs on
	// one goroutine.
	logf("aggregator: BenchmarkApplyOpenClose")
	m, err := runGoBench(bin, b.root, "BenchmarkApplyOpenClose", b.size.benchtime)
	if err != nil {
		return err
	}
	perSec, nsPerOp := m["events/s"], m["ns/op"]
	if perSec == 0 || nsPerOp == 0 {
		return fmt.Errorf("BenchmarkApplyOpenClose reported no events/s or ns/op: %v", m)
	}
	// An op is an open and its close; derive it rather than assume it.
	perOp := perSec * nsPerOp / 1e9
	allocs := m["allocs/op"] / perOp
	res.add("aggregator throughput, one core (BenchmarkApplyOpenClose)", perSec, "events/s",
		fmt.Sprintf("%s (%.0f ns per event)", rate(perSec), nsPerOp/perOp), &targetRate)
	res.add("aggregator allocations per event, steady state", allocs, "allocs/event",
		fmt.Sprintf("%.2g (%.0f B per event)", allocs, m["B/op"]/perOp), &targetNoAllocs)

	logf("aggregator: BenchmarkOutstandingHandles")
	m, err = runGoBench(bin, b.root, "BenchmarkOutstandingHandles", "1x")
	if err != nil {
		return err
	}
	per, ok := m["bytes/handle"]
	if !ok {
		return fmt.Errorf("BenchmarkOutstandingHandles reported no bytes/handle: %v", m)
	}
	res.add("heap per outstanding handle, 1,000,000 outstanding (BenchmarkOutstandingHandles)", per, "bytes",
		fmt.Sprintf("%.0f B", per), &targetPerHandle)
	return nil
}

// runGoBench runs one benchmark of a compiled test binary and returns its
// metrics by unit.
func runGoBench(bin, root, name, benchtime string) (map[string]float64, error) {
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", "^"+name+"$", "-test.benchmem",
		"-test.cpu", "1", "-test.benchtime", benchtime)
	cmd.Dir = filepath.Join(root, "aggregator")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("running %s: %w\n%s", name, err, out.String())
	}
	m, err := parseGoBench(&out, name)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out.String())
	}
	return m, nil
}

// parseGoBench reads the result line of benchmark name from `go test -bench`
// output: the name (with a -N GOMAXPROCS suffix but for one core), the
// iterations, then value-unit pairs.
func parseGoBench(r io.Reader, name string) (map[string]float64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		base, _, _ := strings.Cut(f[0], "-")
		if base != name {
			continue
		}
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			continue
		}
		m := make(map[string]float64)
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: bad value %q for %s", name, f[i], f[i+1])
			}
			m[f[i+1]] = v
		}
		return m, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s's output: %w", name, err)
	}
	return nil, fmt.Errorf("no result line for %s", name)
}
