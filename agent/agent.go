//go:build linux

package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/alert"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/incident"
	"github.com/leaktrace/leaktrace/procfs"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/session"
	"github.com/leaktrace/leaktrace/tracer"
)

// Options configure an Agent.
type Options struct {
	Config   Config
	Interval time.Duration // sampling and alert evaluation
	Tracer   tracer.Config // ring buffer, stack size, pairing; TraceAll and Filter are set from Config
	Log      *slog.Logger
	// ExternalURL is the agent's own URL as its alerts' receivers reach it:
	// alerts link back to its /debug/leaks.
	ExternalURL string
	// Instance names this host in every alert's instance label (default:
	// the host name); Config.Sinks.ExternalLabels may set it too.
	Instance string
}

// Agent traces the host and keeps what its metrics and alerts need.
type Agent struct {
	log      *slog.Logger
	sess     tracing
	interval time.Duration
	alerts   *alert.Manager
	extURL   string
	instance string
	fails    chan fdFailure

	failsDropped atomic.Uint64
	// stackKinds is the kind of the first handle each stack made, a site's
	// stable kind label. onEvent writes it and observe reads it in sess.With:
	// both run under the session's lock. Bounded by max_stacks: evicted
	// stacks are deleted.
	stackKinds map[event.StackID]event.Kind
	lastTick   atomic.Int64 // unix ns of the last evaluation
	ready      atomic.Bool

	// agg is the session's aggregator, for onEvent alone (it runs under the
	// session's lock): an fd failure's table is copied there, in the event
	// path, so that it outlives a process that dies right after.
	agg *aggregator.Aggregator
	// incidentAt is when each process's last incident was taken (guarded by
	// the session's lock, as onEvent is); incidentHold spaces them (ns).
	incidentAt   map[uint32]time.Time
	incidentHold atomic.Int64
	incidents    *incident.Store
	// dash is the dashboard's view, rebuilt at every evaluation: pages are
	// served from it and never wait on the tracer or the agent's lock.
	dash atomic.Pointer[dashboard]

	mu     sync.Mutex // guards everything below
	cfg    Config
	procs  map[uint32]*procState
	sites  map[event.StackID]*siteState
	seeded int
	exited uint64 // processes reported and forgotten
	// heldAtExit counts handles processes held as they exited: released by
	// the kernel then, never leaks.
	heldAtExit uint64
}

// tracing is what the agent uses of its session; tests stand in a fake
// around a real aggregator fed synthetic events.
type tracing interface {
	Add(pid int) error
	Run(stop <-chan struct{}) error
	Close() error
	With(fn func(g *aggregator.Aggregator))
	Site(id event.StackID) session.SiteInfo
	SampleGrowth()
	Compact(now time.Time, idle time.Duration) []event.StackID
	Counters() (tracer.Counters, error)
	TakeSettled() (map[event.StackID]uint64, error)
	BadRecords() uint64
	StacksDropped() uint64
	Report(info session.ReportInfo) (*report.Report, error)
}

// procState is what the agent keeps of one live process.
type procState struct {
	pid            uint32
	comm, exe      string
	cgroup         string // cgroup v2 path
	memCgroupV1    string // cgroup v1 path of the memory controller
	limit          uint64
	open           window
	failures       map[int32]uint64 // errno -> EMFILE/ENFILE failures seen
	lastFail       time.Time
	lastErrno      int32
	limitReadError bool
	// Memory, sampled at each evaluation; memLimit is the lowest memory
	// limit of its cgroup and their ancestors (0: none).
	mem      procfs.Memory
	memOK    bool
	memLimit uint64
	resident window
	// The last incident taken of it and the sites it named.
	incident, incidentTop string
	incidentAt            time.Time
}

// siteState is what the agent keeps of one creation stack.
type siteState struct {
	info        session.SiteInfo
	kind        string // its stack's first kind, kept once known: a changed label starts a new series
	outstanding window
	mapped      window    // bytes it has mapped (mmap, brk) in live processes
	settled     uint64    // handles settled in the kernel since the site appeared
	settledW    window    // settled over the growth window: the site's rate of short-lived handles
	settledAt   time.Time // when it last settled one: the site is not idle for a growth window after
}

type fdFailure struct {
	pid   uint32
	comm  string
	errno int32
	at    time.Time
	table *tableCopy // set when an incident is due
}

// New loads the BPF programs with the configured filters and seeds the
// processes already running. Nothing is read until Run.
func New(opts Options) (*Agent, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	filter, err := kernelFilter(cfg.Filters)
	if err != nil {
		return nil, err
	}
	tc := opts.Tracer
	tc.TraceAll = true
	// Exited processes are forgotten: what they had mapped at the end is
	// of no use here, and a shell's every command maps a dozen files.
	tc.LiveOnly = true
	tc.Filter = filter
	// Whole-host: syscalls nobody follows must run no program at all.
	tc.Hooks = tracer.HooksPerSyscall
	// Most handles live for microseconds: with PairInKernel (the command's
	// default) those closed within the pairing window never leave the kernel.
	a := &Agent{
		log:        opts.Log,
		interval:   opts.Interval,
		extURL:     strings.TrimSuffix(opts.ExternalURL, "/"),
		instance:   opts.Instance,
		fails:      make(chan fdFailure, 1024),
		stackKinds: make(map[event.StackID]event.Kind),
		cfg:        cfg,
		procs:      make(map[uint32]*procState),
		sites:      make(map[event.StackID]*siteState),
		incidentAt: make(map[uint32]time.Time),
	}
	a.incidentHold.Store(int64(cfg.Thresholds.FDFailureHold))
	a.incidents, err = openIncidents(cfg.Incidents, opts.Log)
	if err != nil {
		return nil, err
	}
	sess, err := session.New(session.Options{Mode: aggregator.ModeAttach, MinAge: cfg.Thresholds.MinAge, Tracer: tc,
		Log: opts.Log, MaxStacks: cfg.Limits.MaxStacks, OnEvent: a.onEvent})
	if err != nil {
		return nil, err
	}
	a.sess = sess
	sess.With(func(g *aggregator.Aggregator) { a.agg = g })
	sinks, err := a.sinkQueues(cfg)
	if err != nil {
		a.sess.Close()
		return nil, err
	}
	a.alerts = alert.NewManager(sinks...)
	a.alerts.SetLabels(a.alertLabels(cfg))
	if err := a.seed(cfg.Filters); err != nil {
		a.sess.Close()
		return nil, err
	}
	return a, nil
}

// kernelFilter resolves the configured filters to what the kernel matches.
func kernelFilter(f Filters) (tracer.Filter, error) {
	kf := tracer.Filter{Comms: f.Comms, Pids: len(f.PIDs) > 0}
	for _, cg := range f.Cgroups {
		id, err := CgroupID(cg)
		if err != nil {
			return kf, fmt.Errorf("filters.cgroups: %s: %w (give a path as in /proc/PID/cgroup)", cg, err)
		}
		kf.Cgroups = append(kf.Cgroups, id)
	}
	for _, exe := range f.Exes {
		id, err := tracer.ExeIDOf(exe)
		if err != nil {
			return kf, fmt.Errorf("filters.exes: %w", err)
		}
		kf.Exes = append(kf.Exes, id)
	}
	return kf, nil
}

// seed adds the processes already running that the filters select: their
// open fds are listed as preexisting, as attach does.
func (a *Agent) seed(f Filters) error {
	pids, err := listPIDs()
	if err != nil {
		return fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	want := make(map[int]bool, len(f.PIDs))
	for _, p := range f.PIDs {
		want[p] = true
		if !procfs.Exists(p) {
			return fmt.Errorf("filters.pids: no such pid %d (check it with ps)", p)
		}
	}
	limit := a.cfg.Limits.MaxProcesses
	unseeded := 0
	for _, pid := range pids {
		if pid == self || !a.selects(f, want, pid) {
			continue
		}
		if a.seeded >= limit {
			unseeded++
			continue
		}
		if err := a.sess.Add(pid); err != nil {
			a.log.Debug("process not seeded", "pid", pid, "err", err)
			continue
		}
		a.seeded++
	}
	a.log.Info("seeded running processes", "processes", a.seeded, "over_limit", unseeded)
	return nil
}

// selects applies the filters to a running process, as the kernel will.
func (a *Agent) selects(f Filters, pids map[int]bool, pid int) bool {
	exe := procfs.Exe(pid)
	if exe == "" {
		return false // a kernel thread, or gone
	}
	if f.Empty() || pids[pid] {
		return true
	}
	if len(f.Comms) > 0 {
		if st, err := procfs.ReadStat(pid); err == nil {
			for _, c := range f.Comms {
				if st.Comm == c {
					return true
				}
			}
		}
	}
	if len(f.Cgroups) > 0 {
		cg, _ := readCgroups(pid)
		for _, c := range f.Cgroups {
			if cg == c {
				return true
			}
		}
	}
	for _, e := range f.Exes {
		if exe == e {
			return true
		}
	}
	return false
}

// onEvent runs under the session's lock: it notes each stack's first kind
// and hands EMFILE/ENFILE failures over, never blocking.
func (a *Agent) onEvent(e *event.Event) {
	switch e.Type {
	case event.FDOpen, event.TaskNew:
		// A dup's kind is unknown here (the aggregator takes it from the source).
		if e.Stack != 0 && e.Kind != event.KindUnknown {
			if _, ok := a.stackKinds[e.Stack]; !ok {
				a.stackKinds[e.Stack] = e.Kind
			}
		}
		return
	case event.FDFail:
	default:
		return
	}
	f := fdFailure{pid: e.PID, comm: e.Comm, errno: e.Errno, at: time.Now()}
	f.table = a.snapshotTable(e, f.at)
	select {
	case a.fails <- f:
	default:
		a.failsDropped.Add(1)
	}
}

// Run reads events and evaluates alerts every interval until ctx is done,
// then detaches the programs and flushes the alert sinks.
func (a *Agent) Run(ctx context.Context) error {
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- a.sess.Run(stop) }()
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	a.tick(time.Now())
	a.ready.Store(true)
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-done:
			runErr = fmt.Errorf("reading events: %w", err)
			done <- nil
			break loop
		case f := <-a.fails:
			a.fdFailure(f)
		case now := <-tick.C:
			a.tick(now)
		}
	}
	a.ready.Store(false)
	close(stop)
	if err := <-done; err != nil && runErr == nil {
		runErr = fmt.Errorf("reading events: %w", err)
	}
	a.sess.Close()
	flush, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, q := range a.alerts.Sinks() {
		if err := q.Close(flush); err != nil {
			a.log.Warn("alerts not flushed", "err", err)
		}
	}
	return runErr
}

// Ready reports whether the agent has seeded and evaluated once.
func (a *Agent) Ready() bool { return a.ready.Load() }

// Healthy reports whether evaluations keep their pace.
func (a *Agent) Healthy() bool {
	last := a.lastTick.Load()
	return last == 0 || time.Since(time.Unix(0, last)) < 3*a.interval+10*time.Second
}

// Reload applies a new configuration: thresholds, limits and sinks change at
// once, except what the session fixed when it began: filters are in the
// kernel, and min_age and max_stacks are the aggregator's and the stack
// table's. Those keep their old values until a restart.
func (a *Agent) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	a.mu.Lock()
	old := a.cfg
	if !sameFilters(old.Filters, cfg.Filters) {
		a.log.Warn("filters changed in the config: restart the agent to apply them")
		cfg.Filters = old.Filters
	}
	if cfg.Thresholds.MinAge != old.Thresholds.MinAge || cfg.Limits.MaxStacks != old.Limits.MaxStacks {
		a.log.Warn("min_age/max_stacks need a restart: keeping the values in use",
			"min_age", old.Thresholds.MinAge, "max_stacks", old.Limits.MaxStacks)
		// Alert text prints min_age, so it must be the one suspects are judged by.
		cfg.Thresholds.MinAge = old.Thresholds.MinAge
		cfg.Limits.MaxStacks = old.Limits.MaxStacks
	}
	if cfg.Incidents != old.Incidents {
		a.log.Warn("incidents.dir/max need a restart: keeping the values in use", "dir", old.Incidents.Dir, "max", old.Incidents.Max)
		cfg.Incidents = old.Incidents
	}
	sinks, err := a.sinkQueues(cfg)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	a.cfg = cfg
	a.mu.Unlock()
	a.incidentHold.Store(int64(cfg.Thresholds.FDFailureHold))
	oldSinks := a.alerts.Sinks()
	a.alerts.SetSinks(sinks...)
	a.alerts.SetLabels(a.alertLabels(cfg))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, q := range oldSinks {
			q.Close(ctx)
		}
	}()
	a.log.Info("configuration reloaded")
	return nil
}

func sameFilters(x, y Filters) bool {
	return fmt.Sprint(x) == fmt.Sprint(y)
}

func (a *Agent) sinkQueues(cfg Config) ([]*alert.Queue, error) {
	var webhook, am *http.Client
	var err error
	if s := cfg.Sinks.Webhook; s != nil {
		if webhook, err = s.Client("webhook"); err != nil {
			return nil, fmt.Errorf("sinks.webhook.http_config: %w", err)
		}
	}
	if s := cfg.Sinks.Alertmanager; s != nil {
		if am, err = s.Client("alertmanager"); err != nil {
			return nil, fmt.Errorf("sinks.alertmanager.http_config: %w", err)
		}
	}
	genURL := ""
	if a.extURL != "" {
		genURL = a.extURL + "/debug/leaks"
	}
	qs := []*alert.Queue{alert.NewQueue(alert.LogSink{Log: a.log}, alert.Delivery{}, a.log)}
	if s := cfg.Sinks.Webhook; s != nil {
		qs = append(qs, alert.NewQueue(alert.WebhookSink{URL: s.URL, GeneratorURL: genURL, ExternalURL: a.extURL, Client: webhook}, delivery(s), a.log))
	}
	if s := cfg.Sinks.Alertmanager; s != nil {
		qs = append(qs, alert.NewQueue(alert.AlertmanagerSink{URL: s.URL, GeneratorURL: genURL, Client: am}, delivery(s), a.log))
	}
	return qs, nil
}

// alertLabels are the labels every alert carries: instance (this host), then
// the configured external labels, which may set instance themselves.
func (a *Agent) alertLabels(cfg Config) map[string]string {
	l := map[string]string{}
	if a.instance != "" {
		l["instance"] = a.instance
	} else if h, err := os.Hostname(); err == nil {
		l["instance"] = h
	}
	maps.Copy(l, cfg.Sinks.ExternalLabels)
	return l
}

// delivery tunes an HTTP sink's queue; attempts left unset (0) get 3 tries.
func delivery(s *HTTPSink) alert.Delivery {
	attempts := s.Attempts
	if attempts == 0 {
		attempts = 3
	}
	return alert.Delivery{Timeout: s.Timeout, Attempts: attempts, Backoff: 500 * time.Millisecond}
}

// Report is the live report, as `attach` builds it, in mode "agent".
func (a *Agent) Report() (*report.Report, error) {
	return a.sess.Report(session.ReportInfo{Mode: "agent", ExitCode: -1})
}

// Firing returns the alerts firing now.
func (a *Agent) Firing() []alert.Alert { return a.alerts.Firing() }

// tick forgets exited processes and unused stacks, samples every count and
// evaluates alerts.
func (a *Agent) tick(now time.Time) {
	a.lastTick.Store(now.UnixNano())
	a.forgetExited()
	a.sess.SampleGrowth()
	a.forgetStacks(now)
	snap := a.observe(now, true)
	a.alerts.Evaluate(a.rules(snap, now), now)
	a.buildDashboard(snap, now)
}

// fdFailure records an EMFILE/ENFILE failure and, when it is the process's
// first within the hold time, alerts at once.
func (a *Agent) fdFailure(f fdFailure) {
	a.mu.Lock()
	p := a.procs[f.pid]
	if p == nil && len(a.procs) < a.cfg.Limits.MaxProcesses {
		p = a.newProc(f.pid, f.comm)
		a.procs[f.pid] = p
	}
	fresh := false
	if p != nil {
		fresh = f.at.Sub(p.lastFail) > a.cfg.Thresholds.FDFailureHold
		p.failures[f.errno]++
		p.lastFail, p.lastErrno = f.at, f.errno
	}
	a.mu.Unlock()
	if f.table != nil {
		a.recordIncident(f)
	}
	if fresh {
		snap := a.observe(f.at, false)
		a.alerts.Evaluate(a.rules(snap, f.at), f.at)
	}
}

func (a *Agent) newProc(pid uint32, comm string) *procState {
	p := &procState{pid: pid, comm: comm, exe: procfs.Exe(int(pid)), failures: make(map[int32]uint64)}
	p.cgroup, p.memCgroupV1 = readCgroups(int(pid))
	return p
}

// forgetExited drops everything of the processes that exited, once their
// leaks are logged.
func (a *Agent) forgetExited() {
	var gone []aggregator.ProcessInfo
	var leaks []aggregator.Leak
	a.sess.With(func(g *aggregator.Aggregator) { gone, leaks = g.TakeExited() })
	byPID := make(map[uint32]int)
	for _, l := range leaks {
		if l.PID != 0 {
			byPID[l.PID]++
		}
	}
	if len(gone) > 0 {
		a.sess.With(func(*aggregator.Aggregator) {
			for _, p := range gone {
				delete(a.incidentAt, p.PID)
			}
		})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range gone {
		if n := byPID[p.PID] + p.HeldAtExit; n > 0 {
			a.log.Info("process exited holding handles", "pid", p.PID, "comm", p.Comm, "exe", p.Exe, "handles", n)
		}
		a.heldAtExit += uint64(p.HeldAtExit)
		delete(a.procs, p.PID)
		a.exited++
	}
}

// forgetStacks lets the session evict the stacks that nothing refers to and
// that were unused for a growth window (their sites' windows hold only zeros
// by then), freeing room under max_stacks, and drops the agent's state for
// them. Evicted ids are never given again, so no state can be misattributed.
func (a *Agent) forgetStacks(now time.Time) {
	a.mu.Lock()
	idle := a.cfg.Thresholds.GrowthWindow
	a.mu.Unlock()
	gone := a.sess.Compact(now, idle)
	if len(gone) == 0 {
		return
	}
	a.sess.With(func(*aggregator.Aggregator) {
		for _, id := range gone {
			delete(a.stackKinds, id)
		}
	})
	a.mu.Lock()
	for _, id := range gone {
		delete(a.sites, id)
	}
	a.mu.Unlock()
}

// Counters returns the kernel side's counters and what the agent could not keep.
func (a *Agent) Counters() (tracer.Counters, error) { return a.sess.Counters() }

// errnoName names the errnos the kernel side reports.
func errnoName(e int32) string {
	switch e {
	case 24:
		return "EMFILE"
	case 23:
		return "ENFILE"
	}
	return fmt.Sprintf("errno %d", e)
}

// siteInfo symbolizes a stack once; the caller must not hold a.mu.
func (a *Agent) siteInfo(id event.StackID) session.SiteInfo {
	a.mu.Lock()
	st := a.sites[id]
	a.mu.Unlock()
	if st != nil {
		return st.info
	}
	return a.sess.Site(id)
}
