//go:build linux

package main

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed workloads/churn.c
var churnSource []byte

// tracerCmd turns the workload's command line into one that runs it under a
// tracer. Name keys the measurement in the cache and in the JSON samples.
type tracerCmd struct {
	name string
	wrap func(cmd []string) []string
}

var untraced = tracerCmd{"untraced", func(cmd []string) []string { return cmd }}

// leaktraceRun runs the workload under `leaktrace run`, its JSON report where
// once reads the event counts.
func (b *bench) leaktraceRun(flags ...string) tracerCmd {
	name := strings.TrimSpace("leaktrace run " + strings.Join(flags, " "))
	return tracerCmd{name, func(cmd []string) []string {
		argv := []string{b.cfg.leaktrace, "run", "--json", b.reportPath()}
		argv = append(argv, flags...)
		return append(append(argv, "--"), cmd...)
	}}
}

// leaktraceCopies sends every stack as registers and a copy, unwound in Go,
// as leaktrace did before the kernel unwound sites; every record is sent.
func (b *bench) leaktraceCopies() tracerCmd {
	return b.leaktraceRun("--pair-window", "0", "--no-stack-sites")
}

// sample is one run of the workload.
type sample struct {
	loop     time.Duration // the churn loop, as the workload timed it
	held     int           // fds it held during the loop
	rounds   int           // rounds done, all processes (a paced run does what it can)
	received uint64        // events leaktrace received and lost, from its report
	lost     uint64
}

// stat is the median of a measurement's runs.
type stat struct {
	sample
	runs  []time.Duration
	worst sample // the run that lost the most events
}

func (b *bench) reportPath() string { return filepath.Join(b.dir, "report.json") }

// compileChurn builds the workload with gcc into the bench's temp dir.
func (b *bench) compileChurn() error {
	src := filepath.Join(b.dir, "churn.c")
	if err := os.WriteFile(src, churnSource, 0o644); err != nil {
		return fmt.Errorf("writing the workload's source: %w", err)
	}
	b.churn = filepath.Join(b.dir, "churn")
	out, err := exec.Command("gcc", "-O2", "-Wall", "-o", b.churn, src).CombinedOutput()
	if err != nil {
		return fmt.Errorf("compiling the workload with gcc (apt-get install -y gcc): %w\n%s", err, out)
	}
	return nil
}

// once runs the churn workload with args under t.
func (b *bench) once(t tracerCmd, args []string) (sample, error) {
	out := filepath.Join(b.dir, "loop.txt")
	os.Remove(out)
	os.Remove(b.reportPath())
	prog := []string{b.churn}
	if len(args) > 0 && args[0] == pythonWorkload {
		prog, args = []string{debianPython, filepath.Join(b.root, "bench", "workloads", "churn.py")}, args[1:]
	}
	argv := t.wrap(append(append(prog, args...), "-o", out))
	cmd := exec.Command(argv[0], argv[1:]...)
	var tail tailBuffer
	cmd.Stdout, cmd.Stderr = &tail, &tail
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return sample{}, fmt.Errorf("%s left no timing: %w\n%s", strings.Join(argv, " "), err, tail.String())
	}
	s, err := parseTiming(data)
	if err != nil {
		return sample{}, err
	}
	if data, err := os.ReadFile(b.reportPath()); err == nil {
		var rep struct {
			Events struct {
				Received uint64 `json:"received"`
				Lost     uint64 `json:"lost"`
			} `json:"events"`
		}
		if err := json.Unmarshal(data, &rep); err != nil {
			return sample{}, fmt.Errorf("reading leaktrace's JSON report: %w", err)
		}
		s.received, s.lost = rep.Events.Received, rep.Events.Lost
	}
	return s, nil
}

// parseTiming reads the churn's output: loop ns, fds held, rounds done.
func parseTiming(data []byte) (sample, error) {
	var ns int64
	var s sample
	if _, err := fmt.Sscan(string(data), &ns, &s.held, &s.rounds); err != nil {
		return sample{}, fmt.Errorf("reading the workload's timing %q: %w", data, err)
	}
	s.loop = time.Duration(ns)
	return s, nil
}

// measure runs the workload under each tracer cfg.repeat times and keeps
// each one's median run. The tracers take turns, round by round, so that a
// drift in the machine's speed (other tenants, frequency) hits them alike. A
// measurement already taken is reused.
func (b *bench) measure(args []string, ts ...tracerCmd) ([]stat, error) {
	key := func(t tracerCmd) string { return t.name + ": churn " + strings.Join(args, " ") }
	var todo []tracerCmd
	for _, t := range ts {
		if _, ok := b.cache[key(t)]; !ok {
			todo = append(todo, t)
		}
	}
	runs := make([][]sample, len(todo))
	for range b.cfg.repeat {
		for i, t := range todo {
			logf("%s", key(t))
			s, err := b.once(t, args)
			if err != nil {
				return nil, err
			}
			runs[i] = append(runs[i], s)
		}
	}
	for i, t := range todo {
		st := median(runs[i])
		b.cache[key(t)] = st
		b.res.Samples[key(t)] = seconds(st.runs)
	}
	out := make([]stat, len(ts))
	for i, t := range ts {
		out[i] = b.cache[key(t)]
	}
	return out, nil
}

// median picks the run of median loop time (the lower middle of an even
// count), and apart the run that lost the most events, as any loss matters.
func median(ss []sample) stat {
	sorted := slices.Clone(ss)
	slices.SortFunc(sorted, func(a, b sample) int { return int(a.loop - b.loop) })
	st := stat{sample: sorted[(len(sorted)-1)/2], worst: ss[0]}
	for _, s := range ss {
		st.runs = append(st.runs, s.loop)
		if s.lost > st.worst.lost {
			st.worst = s
		}
	}
	return st
}

func seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// startIdle starts a process that does nothing, for attach to watch.
func startIdle() (*exec.Cmd, error) {
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting an idle process: %w", err)
	}
	return cmd, nil
}

func stopIdle(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// startAttach starts `leaktrace attach pid` and returns once its BPF
// programs are attached: attach prints nothing when it is ready, so this
// waits for its bpf_link fds to appear and stay the same for 300ms.
func (b *bench) startAttach(pid int) (*exec.Cmd, *tailBuffer, error) {
	var tail tailBuffer
	cmd := exec.Command(b.cfg.leaktrace, "attach", "--duration", "1h", "--min-age", "1h", strconv.Itoa(pid))
	cmd.Stdout, cmd.Stderr = &tail, &tail
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting leaktrace attach: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	last, stableSince := -1, time.Now()
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, nil, fmt.Errorf("leaktrace attach exited before it was ready: %v\n%s", err, tail.String())
		case <-time.After(20 * time.Millisecond):
		}
		n := bpfLinks(cmd.Process.Pid)
		if n != last {
			last, stableSince = n, time.Now()
			continue
		}
		if n > 0 && time.Since(stableSince) >= 300*time.Millisecond {
			b.attachExit = exited
			return cmd, &tail, nil
		}
	}
	cmd.Process.Kill()
	<-exited
	return nil, nil, errors.New("leaktrace attach attached no BPF program within 20s")
}

// stopAttach interrupts attach as Ctrl-C would and waits for its report.
func (b *bench) stopAttach(cmd *exec.Cmd, tail *tailBuffer) error {
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-b.attachExit:
		if err != nil {
			return fmt.Errorf("leaktrace attach: %w\n%s", err, tail.String())
		}
		return nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-b.attachExit
		return errors.New("leaktrace attach did not stop within 30s of SIGINT")
	}
}

// bpfLinks counts pid's fds that are BPF links: one per attached program.
func bpfLinks(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == "anon_inode:bpf_link" {
			n++
		}
	}
	return n
}

// tailBuffer keeps the last 8 KiB written to it: enough of a failing
// command's output to say why, bounded when it writes a lot.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const keep = 8 << 10
	t.b = append(t.b, p...)
	if len(t.b) > keep {
		t.b = append(t.b[:0], t.b[len(t.b)-keep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// pythonWorkload, first in a workload's arguments, runs churn.py under
// Debian's python3 (no frame pointers, interpreter in the executable) instead
// of churn.c.
const pythonWorkload = "--python"

const debianPython = "/usr/bin/python3"
