//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// workload is one shape of fd churn: what the table calls it, and the churn
// arguments that make it.
type workload struct {
	name   string
	rounds int // creations per run, for per-round costs
	held   int // fds asked to be held during the loop
	args   []string
}

// title names the workload as run: the held count is the workload's own, as
// RLIMIT_NOFILE may have capped it.
func (w workload) title(st stat) string {
	if w.held > 0 {
		return fmt.Sprintf("%s holding %s fds", w.name, count(st.held))
	}
	return w.name
}

// workloads are the three churns at 1/div of their size; the held count is
// not divided, as holding is set-up, outside the timed loop.
func (b *bench) workloads(div int) []workload {
	n, s := b.size.churn/div, b.size.sockets/div
	itoa := strconv.Itoa
	return []workload{
		{fmt.Sprintf("open+close /dev/null ×%s", count(n)), n, 0, []string{"-m", "open", "-n", itoa(n)}},
		{fmt.Sprintf("socketpair+close ×%s", count(s)), s, 0, []string{"-m", "socketpair", "-n", itoa(s)}},
		{fmt.Sprintf("open+close ×%s", count(n)), n, b.size.held, []string{"-m", "open", "-n", itoa(n), "-H", itoa(b.size.held)}},
		// Two fds open at once: two records wait in the kernel.
		{fmt.Sprintf("open a, open b, close a, close b ×%s (two fds waiting in the kernel at once)", count(n/2)), n / 2, 0, []string{"-m", "interleave", "-n", itoa(n / 2)}},
	}
}

// ratio measures w under t and untraced.
func (b *bench) ratio(t tracerCmd, w workload) (traced, base stat, err error) {
	st, err := b.measure(w.args, untraced, t)
	if err != nil {
		return stat{}, stat{}, err
	}
	return st[1], st[0], nil
}

func ratioResult(traced, base stat, rounds int) (float64, string) {
	r := traced.loop.Seconds() / base.loop.Seconds()
	per := (traced.loop - base.loop).Seconds() / float64(rounds) * 1e6
	s := fmt.Sprintf("%.2fx (%.2f s vs %.2f s; %+.1f µs per round)", r, traced.loop.Seconds(), base.loop.Seconds(), per)
	if traced.worst.lost > 0 {
		s += fmt.Sprintf("; a run lost %s events", count(int(traced.worst.lost)))
	}
	return r, s
}

// overhead is leaktrace run's wall-time ratio on each churn.
func (b *bench) overhead(res *results) error {
	for i, w := range b.workloads(1) {
		if i == 0 {
			// stackCost compares these: take them in the same rounds.
			if _, err := b.measure(w.args, untraced, b.leaktraceRun(), b.leaktraceRun("--pair-window", "0"), b.leaktraceCopies()); err != nil {
				return err
			}
		}
		traced, base, err := b.ratio(b.leaktraceRun(), w)
		if err != nil {
			return err
		}
		r, s := ratioResult(traced, base, w.rounds)
		res.add("leaktrace run / untraced: "+w.title(base), r, "x", s, &targetRatio)
		if w.held == 0 && i < 2 {
			// The same with pairing off: every event is sent, decoded,
			// unwound and aggregated.
			sent, base, err := b.ratio(b.leaktraceRun("--pair-window", "0"), w)
			if err != nil {
				return err
			}
			r, s := ratioResult(sent, base, w.rounds)
			res.add("leaktrace run --pair-window 0 (nothing settled in the kernel) / untraced: "+w.title(base), r, "x", s, &targetRatio)
		}
		if w.held > 0 && base.held < w.held {
			var rl unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
			res.note("The held-fds churn held %s fds, not %s: RLIMIT_NOFILE's hard limit here is %s and raising it needs CAP_SYS_RESOURCE, which this run lacks.",
				count(base.held), count(w.held), count(int(rl.Max)))
		}
	}
	return nil
}

// mmapOverhead is leaktrace run's ratio on a memory mapping churn: every
// mmap sends a record with its stack (never settled in the kernel), every
// munmap one without.
func (b *bench) mmapOverhead(res *results) error {
	n := b.size.churn
	w := workload{fmt.Sprintf("mmap 64 KiB+munmap ×%s", count(n)), n, 0, []string{"-m", "mmap", "-n", strconv.Itoa(n)}}
	traced, base, err := b.ratio(b.leaktraceRun(), w)
	if err != nil {
		return err
	}
	r, s := ratioResult(traced, base, w.rounds)
	res.add("leaktrace run / untraced: "+w.title(base), r, "x", s, &targetRatio)
	return nil
}

// pythonOverhead times a CPython program's open()+close churn traced and
// untraced: every open walks the Python frames in the kernel, which wait
// with its record to be settled there. Compared with the C churn's cost per
// round, the difference is the Python unwinder's.
func (b *bench) pythonOverhead(res *results) error {
	if _, err := os.Stat(debianPython); err != nil {
		logf("skipping the Python churn: no %s (apt-get install -y python3)", debianPython)
		return nil
	}
	n := b.size.churn / 4
	for _, w := range []workload{
		{fmt.Sprintf("python3 open()+close ×%s (Python frames walked in the kernel)", count(n)), n, 0,
			[]string{pythonWorkload, "-m", "open", "-n", strconv.Itoa(n)}},
		// A pool's idle threads sit ahead of the main thread in the
		// interpreter's list: the kernel checks the thread state it found
		// last instead of walking them.
		{fmt.Sprintf("python3 open()+close ×%s among 32 idle threads", count(n)), n, 0,
			[]string{pythonWorkload, "-m", "open", "-t", "32", "-n", strconv.Itoa(n)}},
	} {
		traced, base, err := b.ratio(b.leaktraceRun(), w)
		if err != nil {
			return err
		}
		r, s := ratioResult(traced, base, w.rounds)
		res.add("leaktrace run / untraced: "+w.title(base), r, "x", s, nil)
	}
	return nil
}

// stackCost compares, with every record sent (--pair-window 0), stacks
// sent as sites the kernel unwound with stacks sent as copies Go unwinds.
func (b *bench) stackCost(res *results) error {
	w := b.workloads(1)[0]
	sites, base, err := b.ratio(b.leaktraceRun("--pair-window", "0"), w)
	if err != nil {
		return err
	}
	copies, _, err := b.ratio(b.leaktraceCopies(), w)
	if err != nil {
		return err
	}
	r, s := ratioResult(copies, base, w.rounds)
	res.add("leaktrace run --pair-window 0 --no-stack-sites (every stack a copy, unwound by leaktrace) / untraced: "+w.title(base), r, "x", s, nil)
	perEvent := (copies.loop - sites.loop).Seconds() / float64(w.rounds) * 1e6
	res.add("stack as a call site instead of a copy, per fd creation (--pair-window 0)", perEvent, "µs",
		fmt.Sprintf("%.2f µs saved, %.0f %% of the copies' traced overhead", perEvent, float64(copies.loop-sites.loop)/float64(copies.loop-base.loop)*100), nil)
	return nil
}

// peerOverhead runs the churns under strace and bpftrace.
func (b *bench) peerOverhead(res *results) error {
	ok, why := b.peers()
	for _, peer := range []string{"strace", "bpftrace"} {
		div := 1
		label := peer
		if peer == "strace" {
			div = b.size.straceDiv
			label = "strace -f"
		}
		for _, w := range b.workloads(div) {
			t, found := ok[peer]
			if !found {
				res.skip(label+" / untraced: "+w.name, why[peer], nil)
				continue
			}
			traced, base, err := b.ratio(t, w)
			if err != nil {
				return err
			}
			r, s := ratioResult(traced, base, w.rounds)
			res.add(label+" / untraced: "+w.title(base), r, "x", s, nil)
		}
	}
	return nil
}

// hostSlowdown times an untraced churn alone and while leaktrace attach
// watches another, idle process: every process's syscalls then pass the
// in-kernel filter.
func (b *bench) hostSlowdown(res *results) error {
	idle, err := startIdle()
	if err != nil {
		return err
	}
	defer stopIdle(idle)
	return b.untracedBeside(res, "leaktrace attach", "attach", func() (int, func() error, error) {
		cmd, tail, err := b.startAttach(idle.Process.Pid)
		if err != nil {
			return 0, nil, err
		}
		return cmd.Process.Pid, func() error { return b.stopAttach(cmd, tail) }, nil
	})
}

// startTracer starts a leaktrace that traces something else and returns its
// pid and how to stop it.
type startTracer func() (pid int, stop func() error, err error)

// untracedBeside times the untraced open churn alone and beside the
// leaktrace that start starts, alternating, so drift hits both alike, and
// then reads the kernel's accounting of that leaktrace's programs over one
// more churn.
func (b *bench) untracedBeside(res *results, who, key string, start startTracer) error {
	w := b.workloads(1)[0]
	logf("untraced churn alone and beside %s", who)
	var alone, watched []sample
	// Wall time swings by several per cent between runs on a VM: take more
	// pairs here than elsewhere (but for a smoke run, which checks that it
	// works).
	pairs := 3 * b.cfg.repeat
	if b.cfg.smoke {
		pairs = 1
	}
	for range pairs {
		s, err := b.once(untraced, w.args)
		if err != nil {
			return err
		}
		alone = append(alone, s)
		_, stop, err := start()
		if err != nil {
			return err
		}
		s, err = b.once(untraced, w.args)
		if stopErr := stop(); err == nil {
			err = stopErr
		}
		if err != nil {
			return err
		}
		watched = append(watched, s)
	}
	a, wd := median(alone), median(watched)
	res.Samples["untraced alone ("+key+"): churn"] = seconds(a.runs)
	res.Samples["untraced while "+who+" watches another process: churn"] = seconds(wd.runs)
	pct := (wd.loop.Seconds()/a.loop.Seconds() - 1) * 100
	res.add("untraced process slowed while "+who+" watches another: "+w.name, pct, "%",
		fmt.Sprintf("%+.1f %% (%.3f s vs %.3f s alone)", pct, wd.loop.Seconds(), a.loop.Seconds()), &targetSlowdown)
	// By sampling: the hooks' whole cost, the tracepoints' dispatch that
	// the accounting below does not see included.
	plabel := "the same, by sampling (perf record -g of one more untraced churn): its time in the kernel's syscall tracing, dispatch and " + who + "'s programs"
	if hs, err := b.sampledHookShare(start, w.args); err != nil {
		res.skip(plabel, err.Error(), &targetSlowdown)
	} else {
		res.add(plabel, hs.hooks, "%", fmt.Sprintf("%.1f %% of the churn's samples: %s's programs %.1f %%, the tracepoints' dispatch around them %.1f %%",
			hs.hooks, who, hs.progs, hs.hooks-hs.progs), &targetSlowdown)
	}
	// One more watched run with the kernel's accounting on (it costs the
	// programs a clock read each, so the wall-time runs go without it).
	label := "the same, by the kernel's accounting (BPF run time stats, which themselves add a clock read per run): " + who + "'s programs per untraced syscall"
	progNs, progRuns, err := b.watchedProgCost(start, w.args)
	if err != nil {
		res.skip(label, err.Error(), &targetSlowdown)
		return nil
	}
	if progRuns > 0 && w.rounds > 0 {
		// Runs per round from the count: raw hooks run two programs per
		// syscall, the agent's per-syscall hooks one for an open and one
		// for a close (done at its enter).
		perRun := float64(progNs) / float64(progRuns)
		perRound := float64(progNs) / float64(w.rounds)
		runs := float64(progRuns) / float64(w.rounds)
		pair := a.loop.Seconds() / float64(w.rounds) * 1e9
		share := perRound / pair * 100
		res.add(label, share, "%",
			fmt.Sprintf("%.0f ns per program run × %.2f runs per open+close round = %.0f ns: %+.1f %% of the %.2f µs round", perRun, runs, perRound, share, pair/1e3), &targetSlowdown)
	}
	return nil
}

// sampledHookShare runs the untraced workload once under perf beside the
// leaktrace that start starts.
func (b *bench) sampledHookShare(start startTracer, args []string) (h hookShare, err error) {
	_, stop, err := start()
	if err != nil {
		return h, err
	}
	defer func() {
		if stopErr := stop(); err == nil {
			err = stopErr
		}
	}()
	return b.perfHookShare(args)
}

// watchedProgCost runs the untraced workload once beside the leaktrace that
// start starts, with the kernel's BPF accounting on, and returns the run time
// and runs of that leaktrace's programs meanwhile (other leaktrace processes'
// programs are not counted).
func (b *bench) watchedProgCost(start startTracer, args []string) (ns, runs uint64, err error) {
	stats, err := kernelStats()
	if err != nil {
		return 0, 0, err
	}
	defer stats.Close()
	pid, stop, err := start()
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if stopErr := stop(); err == nil {
			err = stopErr
		}
	}()
	objs, err := openObjects(pid)
	if err != nil {
		return 0, 0, err
	}
	defer objs.close()
	s0, err := objs.snapshot()
	if err != nil {
		return 0, 0, err
	}
	if _, err := b.once(untraced, args); err != nil {
		return 0, 0, err
	}
	s1, err := objs.snapshot()
	if err != nil {
		return 0, 0, err
	}
	d := s0.to(s1, false)
	for _, p := range d.progs {
		runs += p.Runs
	}
	return d.ns, runs, nil
}

// bpfStats turns the kernel's per-program run time accounting on for the
// measurement and back off after, if it was off: kernelStats' fallback where
// BPF_ENABLE_STATS is refused.
type bpfStats struct{ on, was bool }

const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

func enableBPFStats() bpfStats {
	old, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		return bpfStats{}
	}
	was := len(old) > 0 && old[0] == '1'
	if !was && os.WriteFile(bpfStatsSysctl, []byte("1"), 0o644) != nil {
		return bpfStats{}
	}
	return bpfStats{on: true, was: was}
}

func (s bpfStats) restore() {
	if s.on && !s.was {
		os.WriteFile(bpfStatsSysctl, []byte("0"), 0o644)
	}
}

// lostEvents runs two churners at once, one per core here, under one
// leaktrace run with the default ring buffer.
func (b *bench) lostEvents(res *results) error {
	n := b.size.churn
	// interleave: in-kernel pairing settles none of it, so every event
	// crosses the ring buffer.
	args := []string{"-m", "interleave", "-n", strconv.Itoa(n), "-p", "2"}
	sts, err := b.measure(args, b.leaktraceRun())
	if err != nil {
		return err
	}
	st := sts[0]
	worst := ""
	if b.cfg.repeat > 1 {
		worst = fmt.Sprintf("; worst of %d runs", b.cfg.repeat)
	}
	res.add(fmt.Sprintf("events lost, 2 processes × %s (open, open, close, close) under one leaktrace run (default ring buffer)", count(n)),
		float64(st.worst.lost), "events",
		fmt.Sprintf("%s of %s (%s received during the loop%s)", count(int(st.worst.lost)), count(int(st.worst.lost+st.worst.received)),
			rate(float64(st.received)/st.loop.Seconds()), worst), &targetNoLoss)
	return nil
}

// attachReady reads how long `run` and `attach` take from their start until
// the kernel side is loaded and attached: each logs "tracer ready
// since_start_ms=N" under -v. attach --duration 1ms on an idle process and
// run of /bin/true: the time before tracing is all that is measured.
func (b *bench) attachReady(res *results) error {
	idle, err := startIdle()
	if err != nil {
		return err
	}
	defer stopIdle(idle)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"run", []string{"-v", "run", "--", "/bin/true"}},
		{"attach", []string{"-v", "attach", "--duration", "1ms", strconv.Itoa(idle.Process.Pid)}},
	} {
		logf("leaktrace %s", strings.Join(c.args, " "))
		var runs []sample
		for range b.cfg.repeat {
			var tail tailBuffer
			cmd := exec.Command(b.cfg.leaktrace, c.args...)
			cmd.Stdout, cmd.Stderr = &tail, &tail
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("leaktrace %s: %w\n%s", strings.Join(c.args, " "), err, tail.String())
			}
			ms, ok := readyMillis(tail.String())
			if !ok {
				return fmt.Errorf("leaktrace %s logged no 'tracer ready' line\n%s", c.name, tail.String())
			}
			runs = append(runs, sample{loop: time.Duration(ms) * time.Millisecond})
		}
		st := median(runs)
		res.Samples["leaktrace "+c.name+" ready"] = seconds(st.runs)
		res.add(c.name+" ready: from leaktrace's start until its programs are loaded and attached", st.loop.Seconds(), "s",
			fmt.Sprintf("%.0f ms", st.loop.Seconds()*1000), &targetReady)
	}
	return nil
}

var reReady = regexp.MustCompile(`msg="tracer ready" since_start_ms=(\d+)`)

// readyMillis finds leaktrace's "tracer ready" log line in its output.
func readyMillis(out string) (int, bool) {
	m := reReady.FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}
