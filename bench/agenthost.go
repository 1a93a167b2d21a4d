//go:build linux

package main

import (
	"cmp"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"time"
)

// The agent's cost to the host it watches (issue 16): workloads the agent
// did not choose, each timed with the agent off and on in turn.

// The goals of issue 16.
var (
	targetAgentRatio = target{"≤ 1.10x", func(v float64) bool { return v <= 1.10 }}
	targetAgentLoss  = target{"≤ 5 % lost", func(v float64) bool { return v <= 5 }}
	targetAgentCPU   = target{"≤ 5 % of a core", func(v float64) bool { return v <= 5 }}
)

// agentHost times the churns and nginx with the whole-host agent off and
// on, alternating, and the agent's own CPU at paced syscall rates (in the
// last round the agent is on), then the churn beside an agent that filters
// it out.
func (b *bench) agentHost(res *results) error {
	res.section("leaktrace agent, whole host (default flags: every process on the host traced)")
	ws := b.workloads(1)[:2] // open+close, socketpair
	ng, why := b.startNginx()
	if ng != nil {
		defer ng.stop()
	}
	off, on := make([][]sample, len(ws)), make([][]sample, len(ws))
	var reqOff, reqOn []sample
	var execOff, execOn []execWindow
	var cpu [][]cpuWindow
	for r := range b.cfg.repeat {
		// Off first in even rounds, on first in odd ones: neither always
		// runs on a machine the other has just warmed.
		for _, agentOn := range []bool{r%2 == 1, r%2 == 0} {
			var agent *agentProc
			if agentOn {
				logf("agent: starting a whole-host agent")
				var err error
				if agent, err = b.startAgent(); err != nil {
					return err
				}
			}
			err := func() error {
				if err := b.warmUp(ng); err != nil {
					return err
				}
				for i, w := range ws {
					logf("agent %s: churn %s", onOff(agentOn), w.name)
					s, err := b.once(untraced, w.args)
					if err != nil {
						return err
					}
					if agentOn {
						on[i] = append(on[i], s)
					} else {
						off[i] = append(off[i], s)
					}
				}
				if ng != nil {
					logf("agent %s: ab -n %d -c %d against nginx", onOff(agentOn), b.size.abRequests, abConcurrency)
					rps, err := ng.ab(b.size.abRequests)
					if err != nil {
						return err
					}
					// A sample's loop holds the time per request, so that
					// the median is taken as the churns' is.
					s := sample{loop: time.Duration(float64(time.Second) / rps)}
					if agentOn {
						reqOn = append(reqOn, s)
					} else {
						reqOff = append(reqOff, s)
					}
				}
				logf("agent %s: exec churn for %v", onOff(agentOn), b.size.execs)
				agentPID := 0
				if agentOn {
					agentPID = agent.pid()
				}
				ew, err := execChurn(b.size.execs, agentPID)
				if err != nil {
					return err
				}
				if agentOn {
					execOn = append(execOn, ew)
				} else {
					execOff = append(execOff, ew)
				}
				// Last, so that no backlog of its churns reaches the
				// requests: the agent's CPU, in the last round it is on.
				if agentOn && r == b.cfg.repeat-1 {
					var err error
					cpu, err = b.agentCPU(agent)
					return err
				}
				return nil
			}()
			if agent != nil {
				if stopErr := agent.stop(); err == nil {
					err = stopErr
				}
			}
			if err != nil {
				return err
			}
		}
	}
	for i, w := range ws {
		a, o := median(off[i]), median(on[i])
		res.Samples["agent off: churn "+w.name] = seconds(a.runs)
		res.Samples["agent on (whole host): churn "+w.name] = seconds(o.runs)
		offNs := a.loop.Seconds() / float64(w.rounds) * 1e9
		onNs := o.loop.Seconds() / float64(w.rounds) * 1e9
		var t *target
		if i == 0 {
			t = &targetAgentRatio
		}
		res.add("agent on / off, whole host: "+w.name+", ns per round", onNs/offNs, "x",
			fmt.Sprintf("%.2fx (%s ns vs %s ns per round)", onNs/offNs, count(int(onNs)), count(int(offNs))), t)
	}
	label := fmt.Sprintf("agent on vs off, whole host: nginx (1 worker) under ab -n %s -c %d, no keep-alive, loopback, req/s", count(b.size.abRequests), abConcurrency)
	if ng == nil {
		res.skip(label, why, &targetAgentLoss)
	} else {
		a, o := median(reqOff), median(reqOn)
		res.Samples["agent off: nginx, seconds per request"] = seconds(a.runs)
		res.Samples["agent on (whole host): nginx, seconds per request"] = seconds(o.runs)
		offRPS, onRPS := 1/a.loop.Seconds(), 1/o.loop.Seconds()
		lost := (1 - onRPS/offRPS) * 100
		res.add(label, lost, "% lost", fmt.Sprintf("%+.1f %% (%s vs %s req/s)", -lost, count(int(onRPS)), count(int(offRPS))), &targetAgentLoss)
	}
	execRows(res, execOff, execOn)
	cpuRows(res, cpu)

	idle, err := startIdle()
	if err != nil {
		return err
	}
	defer stopIdle(idle)
	pid := strconv.Itoa(idle.Process.Pid)
	return b.untracedBeside(res, "leaktrace agent --pid", "agent", func() (int, func() error, error) {
		a, err := b.startAgent("--pid", pid)
		if err != nil {
			return 0, nil, err
		}
		return a.pid(), a.stop, nil
	})
}

// execScript is a round of a host of short-lived processes: three execs
// (a shell, cat, ls), each a new process image with the dynamic loader's
// opens and mappings.
const execScript = "cat /etc/hostname >/dev/null; ls / >/dev/null"

// execWindow is an exec churn's rounds per second and the agent's CPU over
// it (zero when off).
type execWindow struct {
	perSec float64
	cpu    time.Duration
	took   time.Duration
}

// execChurn runs execScript's rounds one after another for d.
func execChurn(d time.Duration, agentPID int) (execWindow, error) {
	var cpu0 time.Duration
	if agentPID != 0 {
		var err error
		if cpu0, err = processCPU(agentPID); err != nil {
			return execWindow{}, err
		}
	}
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if out, err := exec.Command("sh", "-c", execScript).CombinedOutput(); err != nil {
			return execWindow{}, fmt.Errorf("exec churn: %w: %s", err, out)
		}
		n++
	}
	w := execWindow{took: time.Since(start)}
	w.perSec = float64(n) / w.took.Seconds()
	if agentPID != 0 {
		cpu1, err := processCPU(agentPID)
		if err != nil {
			return execWindow{}, err
		}
		w.cpu = cpu1 - cpu0
	}
	return w, nil
}

// execRows: the exec churn's rounds lost to the agent (medians of the
// rounds) and the agent's CPU over them.
func execRows(res *results, off, on []execWindow) {
	if len(off) == 0 || len(on) == 0 {
		return
	}
	rate := func(ws []execWindow) float64 {
		v := make([]float64, len(ws))
		for i, w := range ws {
			v[i] = w.perSec
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	offR, onR := rate(off), rate(on)
	lost := (1 - onR/offR) * 100
	res.add("agent on vs off, whole host: exec churn (sh -c 'cat; ls': 3 execs a round), rounds/s", lost, "% lost",
		fmt.Sprintf("%+.1f %% (%.1f vs %.1f rounds/s)", -lost, onR, offR), nil)
	var cpu, took time.Duration
	execs := 0.0
	for _, w := range on {
		cpu += w.cpu
		took += w.took
		execs += 3 * w.perSec * w.took.Seconds()
	}
	cores := cpu.Seconds() / took.Seconds()
	res.add("agent CPU during the exec churn, cores", cores, "cores",
		fmt.Sprintf("%.1f %% of a core (%.2f ms per exec)", cores*100, cpu.Seconds()*1e3/execs), nil)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// agentRate is one paced load of the agent's CPU rows.
type agentRate struct {
	syscalls int // followed syscalls per second asked, host-wide; 0: idle
	procs    int
}

// agentRates are the paced loads of the agent's CPU rows: the host as it is,
// then an open+close churn adding about 50 k and 500 k followed syscalls per
// second (one process paces 50 k; 500 k takes a process per core here).
var agentRates = []agentRate{{0, 1}, {50_000, 1}, {500_000, 2}}

// agentCPU measures the running whole-host agent's own CPU (cores used) at
// each of agentRates, cfg.repeat windows each.
func (b *bench) agentCPU(agent *agentProc) ([][]cpuWindow, error) {
	objs, err := openObjects(agent.pid())
	if err != nil {
		return nil, err
	}
	defer objs.close()
	out := make([][]cpuWindow, len(agentRates))
	for range b.cfg.repeat {
		for i, r := range agentRates {
			w, err := b.agentWindow(objs, r)
			if err != nil {
				return nil, err
			}
			out[i] = append(out[i], w)
		}
	}
	return out, nil
}

// cpuRows adds the agent's CPU rows, the median window of each rate.
func cpuRows(res *results, cpu [][]cpuWindow) {
	for i, r := range agentRates {
		runs := slices.Clone(cpu[i])
		var all []float64
		for _, w := range runs {
			all = append(all, w.cores)
		}
		slices.SortFunc(runs, func(a, b cpuWindow) int { return cmp.Compare(a.cores, b.cores) })
		m := runs[(len(runs)-1)/2]
		name := "agent's own CPU, whole host, host as it is (no churn added)"
		var t *target
		if r.syscalls > 0 {
			name = fmt.Sprintf("agent's own CPU, whole host, with a paced open+close churn asked for %s followed syscalls/s", perSec(float64(r.syscalls)))
			if r.syscalls == 50_000 {
				t = &targetAgentCPU
			}
		}
		res.Samples[name+", cores"] = all
		detail := fmt.Sprintf("%.1f %% of a core (%s events/s sent to it", m.cores*100, perSec(m.eventsPerSec))
		if r.syscalls > 0 {
			detail += fmt.Sprintf("; the churn reached %s syscalls/s", perSec(m.reached))
		}
		res.add(name, m.cores*100, "% of a core", detail+")", t)
	}
}

// cpuWindow is the agent's CPU over one paced churn: cores used, events per
// second it was sent, and the followed syscalls per second the churn reached.
type cpuWindow struct{ cores, eventsPerSec, reached float64 }

// agentWindow runs one paced churn, or waits as long for idle.
func (b *bench) agentWindow(objs *ltObjects, r agentRate) (cpuWindow, error) {
	var w cpuWindow
	s0, err := objs.snapshot()
	if err != nil {
		return w, err
	}
	start := time.Now()
	if r.syscalls == 0 {
		logf("agent: CPU over %s, no churn added", b.size.paced)
		time.Sleep(b.size.paced)
	} else {
		// A round is two followed syscalls, an open and a close.
		perProc := r.syscalls / 2 / r.procs
		args := []string{"-m", "open", "-r", strconv.Itoa(perProc), "-d", strconv.FormatFloat(b.size.paced.Seconds(), 'f', -1, 64),
			"-p", strconv.Itoa(r.procs)}
		logf("agent: CPU with churn %v", args)
		s, err := b.once(untraced, args)
		if err != nil {
			return w, err
		}
		w.reached = float64(2*s.rounds) / s.loop.Seconds()
	}
	// What the churn sent is read within the window.
	time.Sleep(300 * time.Millisecond)
	s1, err := objs.snapshot()
	if err != nil {
		return w, err
	}
	wall := time.Since(start).Seconds()
	w.cores = (s1.cpu - s0.cpu).Seconds() / wall
	w.eventsPerSec = float64(s1.sent-s0.sent) / wall
	return w, nil
}

// warmUp runs each workload briefly before the timed runs, with the agent
// on and off alike: a fresh agent reads the symbols and line tables of the
// programs it first sees (libc's compressed DWARF among them), a one-time
// cost of its start that an agent left on for weeks does not pay per
// request. The timed runs measure that steady state.
func (b *bench) warmUp(ng *nginx) error {
	for _, args := range [][]string{{"-m", "open", "-n", "2000"}, {"-m", "socketpair", "-n", "1000"}} {
		if _, err := b.once(untraced, args); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if ng != nil {
		if _, err := ng.ab(1000); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	time.Sleep(time.Second) // what the warm-up sent is read and symbolized
	return nil
}
