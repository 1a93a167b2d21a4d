//go:build linux

package main

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A cost breakdown per followed syscall: where a traced churn's cost goes,
// read from the kernel's accounting and leaktrace's own CPU over the churn's
// loop alone (gated: counters are read when the loop starts and once its
// events have been read).

// bdConfig is one traced setup of the breakdown.
type bdConfig struct {
	label    string   // how the table names it
	agent    bool     // leaktrace agent --pid CHURN, else leaktrace run
	flags    []string // leaktrace's flags
	args     []string // the churn's
	rounds   int
	perRound int    // followed syscalls per round
	bin      string // the leaktrace binary; "": -leaktrace's
}

// window is the accounting over one gated loop, or the sum of several.
type window struct {
	kDelta
	loop     time.Duration
	syscalls uint64 // followed syscalls the loop made
}

func (w *window) add(o window) {
	w.ns += o.ns
	w.bytes += o.bytes
	w.sent += o.sent
	w.hasSent = o.hasSent
	w.produced = o.produced
	w.cpu += o.cpu
	w.loop += o.loop
	w.syscalls += o.syscalls
	for _, p := range o.progs {
		found := false
		for i := range w.progs {
			if w.progs[i].Name == p.Name {
				w.progs[i].Runs += p.Runs
				w.progs[i].RunNs += p.RunNs
				found = true
			}
		}
		if !found {
			w.progs = append(w.progs, p)
		}
	}
}

// breakdownJSON is a configuration's figures as bench-results.json has them.
type breakdownJSON struct {
	Config           string      `json:"config"`
	Runs             int         `json:"runs"`
	FollowedSyscalls uint64      `json:"followed_syscalls"`
	LoopSeconds      float64     `json:"loop_seconds"`
	Programs         []progDelta `json:"programs"`
	KernelNsPerCall  float64     `json:"kernel_ns_per_followed_syscall"`
	EventsSent       uint64      `json:"events_sent"`
	RingBytes        uint64      `json:"ring_buffer_bytes"`
	RingBytesPerEvt  float64     `json:"ring_buffer_bytes_per_event,omitempty"`
	CPUSeconds       float64     `json:"leaktrace_cpu_seconds"`
	CPUNsPerEvent    float64     `json:"leaktrace_cpu_ns_per_event,omitempty"`
}

// bdConfigs are the breakdown's configurations: run and agent, each on the
// open churn (settled in the kernel) and on the interleaved one with pairing
// off (every event sent), the latter again with --no-stack-sites (every
// stack a copy). bare[i] is the index of configuration i's --no-stack-sites
// twin, or -1.
func (b *bench) bdConfigs() (all []bdConfig, bare []int) {
	n := b.size.churn
	itoa := strconv.Itoa
	open := []string{"-m", "open", "-n", itoa(n)}
	inter := []string{"-m", "interleave", "-n", itoa(n / 2)}
	openName := fmt.Sprintf("open+close /dev/null ×%s (paired in the kernel)", count(n))
	interName := fmt.Sprintf("open a, open b, close a, close b ×%s (--pair-window 0: every event sent)", count(n/2))
	// --interval 1h: no evaluation falls in the loop, so the agent's CPU is
	// the reader's and the aggregator's.
	agentFlags := []string{"--interval", "1h"}
	for _, mode := range []struct {
		name  string
		agent bool
		flags []string
	}{{"leaktrace run", false, nil}, {"leaktrace agent --pid CHURN", true, agentFlags}} {
		// The sent path: pairing off, so every record crosses the ring.
		sent := append(append([]string{}, mode.flags...), "--pair-window", "0")
		all = append(all,
			bdConfig{label: mode.name + ", " + openName, agent: mode.agent, flags: mode.flags, args: open, rounds: n, perRound: 2},
			bdConfig{label: mode.name + ", " + interName, agent: mode.agent, flags: sent, args: inter, rounds: n / 2, perRound: 4})
		noStack := all[len(all)-1]
		noStack.flags = append(append([]string{}, sent...), "--no-stack-sites")
		all = append(all, noStack)
		bare = append(bare, -1, len(all)-1, -1)
	}
	if b.cfg.versus != "" {
		// The -versus binary's twins of the default configurations, measured
		// in the same turns.
		for i := range len(all) {
			if !slices.Contains(all[i].flags, "--no-stack-sites") {
				twin := all[i]
				twin.bin = b.cfg.versus
				all = append(all, twin)
				bare = append(bare, -1)
			}
		}
	}
	return all, bare
}

// versusOf is the index in all of the -versus twin of configuration i, or -1.
func versusOf(all []bdConfig, i int) int {
	for j, c := range all {
		if c.bin != "" && all[i].bin == "" && c.label == all[i].label && slices.Equal(c.flags, all[i].flags) {
			return j
		}
	}
	return -1
}

// breakdown measures each configuration cfg.repeat times (the default and
// --no-stack-sites taking turns) with the kernel's BPF accounting on, and adds
// per configuration: the programs' run time per followed syscall, ring
// buffer bytes per event, leaktrace's CPU per event, and the stack capture's
// share of each.
func (b *bench) breakdown(res *results) error {
	res.section("Cost breakdown per followed syscall (the kernel's BPF accounting, ring buffer, leaktrace's own CPU; over the churn's loop alone)")
	all, bare := b.bdConfigs()
	stats, err := kernelStats()
	if err != nil {
		for _, c := range all {
			res.skip("breakdown: "+c.label, err.Error(), nil)
		}
		return nil
	}
	defer stats.Close()
	sums := make([]window, len(all))
	for range b.cfg.repeat {
		for i, c := range all {
			logf("breakdown: %s %s", c.label, strings.Join(c.flags, " "))
			w, err := b.gatedWindow(c)
			if err != nil {
				return err
			}
			sums[i].add(w)
		}
	}
	for i, c := range all {
		res.Breakdown = append(res.Breakdown, sums[i].json(c, b.cfg.repeat))
	}
	for i, c := range all {
		if c.bin == "" && !slices.Contains(c.flags, "--no-stack-sites") {
			b.breakdownRows(res, c, sums[i])
		}
	}
	for i, c := range all {
		if j := versusOf(all, i); j >= 0 {
			versusRow(res, c, sums[i], sums[j], filepath.Base(b.cfg.versus))
		}
	}
	for i, c := range all {
		if bare[i] >= 0 {
			stackShare(res, c, sums[i], sums[bare[i]])
		}
	}
	return nil
}

// gatedWindow runs c once, gated, and returns the accounting over its loop.
func (b *bench) gatedWindow(c bdConfig) (window, error) {
	out := filepath.Join(b.dir, "gated.txt")
	churn := b.gatedArgs(c.args, out)
	var g *gatedChurn
	var err error
	var agent *agentProc
	var ltPID int
	if c.agent {
		if g, err = startGated(churn, out); err != nil {
			return window{}, err
		}
		if err = g.await("ready"); err != nil {
			g.kill()
			return window{}, err
		}
		flags := append([]string{"--pid", strconv.Itoa(g.cmd.Process.Pid)}, c.flags...)
		if agent, err = b.startAgentBin(cmp.Or(c.bin, b.cfg.leaktrace), flags...); err != nil {
			g.kill()
			return window{}, err
		}
		defer agent.stop()
		ltPID = agent.pid()
	} else {
		bin := cmp.Or(c.bin, b.cfg.leaktrace)
		argv := append([]string{bin, "run", "--json", b.reportPath()}, c.flags...)
		if g, err = startGated(append(append(argv, "--"), churn...), out); err != nil {
			return window{}, err
		}
		if err = g.await("ready"); err != nil {
			g.kill()
			return window{}, err
		}
		ltPID = g.cmd.Process.Pid
	}
	w, err := gatedLoop(g, ltPID)
	if err != nil {
		g.kill()
		return window{}, err
	}
	st, err := g.finish()
	if err != nil {
		return window{}, err
	}
	w.loop = st.loop
	w.syscalls = uint64(st.rounds * c.perRound)
	return w, nil
}

// gatedLoop reads leaktrace's accounting at the churn's "ready", releases
// it, and reads it again once the loop is done and its events read.
func gatedLoop(g *gatedChurn, ltPID int) (window, error) {
	objs, err := openObjects(ltPID)
	if err != nil {
		return window{}, err
	}
	defer objs.close()
	s0, err := objs.snapshot()
	if err != nil {
		return window{}, err
	}
	if err := g.release(); err != nil {
		return window{}, err
	}
	if err := g.await("done"); err != nil {
		return window{}, err
	}
	objs.settle(5 * time.Second)
	s1, err := objs.snapshot()
	if err != nil {
		return window{}, err
	}
	return window{kDelta: s0.to(s1, len(objs.rings) > 0)}, nil
}

func (w window) json(c bdConfig, runs int) breakdownJSON {
	name := c.label + " " + strings.Join(c.flags, " ")
	if c.bin != "" {
		name += " (-versus " + c.bin + ")"
	}
	j := breakdownJSON{Config: strings.TrimSpace(name), Runs: runs,
		FollowedSyscalls: w.syscalls, LoopSeconds: w.loop.Seconds(), Programs: w.progs,
		EventsSent: w.sent, RingBytes: w.bytes, CPUSeconds: w.cpu.Seconds()}
	if w.syscalls > 0 {
		j.KernelNsPerCall = float64(w.ns) / float64(w.syscalls)
	}
	if w.sent > 0 {
		j.RingBytesPerEvt = float64(w.bytes) / float64(w.sent)
		j.CPUNsPerEvent = float64(w.cpu) / float64(w.sent)
	}
	return j
}

// breakdownRows adds c's three rows: kernel, ring buffer, leaktrace's CPU.
func (b *bench) breakdownRows(res *results, c bdConfig, w window) {
	perCall := float64(w.ns) / float64(w.syscalls)
	res.add("kernel: leaktrace's programs per followed syscall — "+c.label, perCall, "ns",
		fmt.Sprintf("%s ns (%s)", count(int(perCall)), progSummary(w)), nil)
	switch {
	case !w.produced || !w.hasSent:
		res.skip("ring buffer bytes per event sent — "+c.label, "no ring buffer or counters map found among leaktrace's fds", nil)
	case w.sent == 0:
		res.add("ring buffer bytes per event sent — "+c.label, 0, "B",
			fmt.Sprintf("no event sent (%s B of ring used)", count(int(w.bytes))), nil)
	default:
		per := float64(w.bytes) / float64(w.sent)
		res.add("ring buffer bytes per event sent — "+c.label, per, "B",
			fmt.Sprintf("%s B (%s events, %.2f per followed syscall; %.1f MB/s during the loop)", count(int(per)), count(int(w.sent)),
				float64(w.sent)/float64(w.syscalls), float64(w.bytes)/w.loop.Seconds()/1e6), nil)
	}
	// Per followed syscall as well: where few events are sent, a fixed cost
	// divided by them says little.
	cores := w.cpu.Seconds() / w.loop.Seconds()
	perCall = w.cpu.Seconds() / float64(w.syscalls) * 1e9
	label := "leaktrace's own CPU per event (reader, decoder, aggregator) — " + c.label
	if w.sent == 0 {
		res.add(label, 0, "µs", fmt.Sprintf("no event sent; %s ns per followed syscall (%.3f s CPU over the loop, %.2f cores)",
			count(int(perCall)), w.cpu.Seconds(), cores), nil)
		return
	}
	per := w.cpu.Seconds() / float64(w.sent) * 1e6
	res.add(label, per, "µs", fmt.Sprintf("%.2f µs (%.3f s CPU for %s events), %s ns per followed syscall; %.2f cores during the loop",
		per, w.cpu.Seconds(), count(int(w.sent)), count(int(perCall)), cores), nil)
}

// progSummary lists the programs that took 1 % of the time or more, most
// first, as ns per run × runs per followed syscall; the rest are summed.
func progSummary(w window) string {
	var parts []string
	var restNs uint64
	rest := 0
	for _, p := range w.progs {
		if len(parts) == 4 || float64(p.RunNs) < 0.01*float64(w.ns) {
			restNs += p.RunNs
			rest++
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s ns × %.2f", p.Name, count(int(float64(p.RunNs)/float64(p.Runs))),
			float64(p.Runs)/float64(w.syscalls)))
	}
	if len(parts) == 0 {
		return "no program ran"
	}
	s := strings.Join(parts, ", ")
	if rest > 0 {
		s += fmt.Sprintf(", %d more programs %.0f ns", rest, float64(restNs)/float64(w.syscalls))
	}
	return s + " per followed syscall; ns per run × runs"
}

// stackShare compares c's stacks sent as sites (the default) with stacks
// sent as copies (--no-stack-sites): what sending sites saves.
func stackShare(res *results, c bdConfig, sites, copies window) {
	ks, kc := float64(sites.ns)/float64(sites.syscalls), float64(copies.ns)/float64(copies.syscalls)
	parts := []string{fmt.Sprintf("kernel %s ns per followed syscall with copies, %s with sites (%.0f %% less)", count(int(kc)), count(int(ks)), pct(kc-ks, kc))}
	if sites.sent > 0 && copies.sent > 0 {
		bs, bc := float64(sites.bytes)/float64(sites.sent), float64(copies.bytes)/float64(copies.sent)
		cs, cc := sites.cpu.Seconds()/float64(sites.sent)*1e6, copies.cpu.Seconds()/float64(copies.sent)*1e6
		parts = append(parts, fmt.Sprintf("ring %s B per event with copies, %s with sites (%.0f %% less)", count(int(bc)), count(int(bs)), pct(bc-bs, bc)),
			fmt.Sprintf("leaktrace CPU %.2f µs per event with copies, %.2f with sites (%.0f %% less)", cc, cs, pct(cc-cs, cc)))
	}
	ls := sites.loop.Seconds() / float64(sites.syscalls) * 1e9
	lc := copies.loop.Seconds() / float64(copies.syscalls) * 1e9
	parts = append(parts, fmt.Sprintf("loop %s ns per followed syscall with copies, %s with sites", count(int(lc)), count(int(ls))))
	res.add("stacks sent as call sites (default) against copies (--no-stack-sites) — "+c.label, pct(kc-ks, kc), "%",
		strings.Join(parts, "; "), nil)
}

// versusRow compares configuration c measured with -leaktrace (w) and with
// the -versus binary named name (v), taking turns.
func versusRow(res *results, c bdConfig, w, v window, name string) {
	if w.syscalls == 0 || v.syscalls == 0 {
		return
	}
	kw, kv := float64(w.ns)/float64(w.syscalls), float64(v.ns)/float64(v.syscalls)
	parts := []string{fmt.Sprintf("kernel %s ns per followed syscall, %s with %s (%+.0f %%)", count(int(kw)), count(int(kv)), name, pct(kw-kv, kv))}
	if w.sent > 0 && v.sent > 0 {
		cw, cv := w.cpu.Seconds()/float64(w.sent)*1e6, v.cpu.Seconds()/float64(v.sent)*1e6
		parts = append(parts, fmt.Sprintf("leaktrace CPU %.2f µs per event, %.2f with %s", cw, cv, name))
	}
	lw := w.loop.Seconds() / float64(w.syscalls) * 1e9
	lv := v.loop.Seconds() / float64(v.syscalls) * 1e9
	parts = append(parts, fmt.Sprintf("loop %s ns per followed syscall, %s with %s", count(int(lw)), count(int(lv)), name))
	res.add("against "+name+", taking turns — "+c.label, pct(kw-kv, kv), "%", strings.Join(parts, "; "), nil)
}

func pct(part, whole float64) float64 {
	if whole == 0 {
		return 0
	}
	return part / whole * 100
}
