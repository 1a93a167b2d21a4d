//go:build linux

package agent

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leaktrace/leaktrace/event"
)

const namespace = "leaktrace"

var (
	procLabels = []string{"pid", "comm", "cgroup"}
	siteLabels = []string{"site", "function", "location", "kind"}

	descOpen             = prometheus.NewDesc(namespace+"_process_open_handles", "Handles a process holds now, by kind: fds (as /proc/PID/fd lists them), plus threads and children created while traced.", append(procLabels, "kind"), nil)
	descLimit            = prometheus.NewDesc(namespace+"_process_fd_limit", "The process's soft RLIMIT_NOFILE.", procLabels, nil)
	descRatio            = prometheus.NewDesc(namespace+"_process_fd_usage_ratio", "Open fds over the soft RLIMIT_NOFILE (0 to 1).", procLabels, nil)
	descGrowth           = prometheus.NewDesc(namespace+"_process_fd_growth_per_second", "Change of the process's open fds per second over the growth window.", procLabels, nil)
	descExhaust          = prometheus.NewDesc(namespace+"_process_fd_exhaustion_seconds", "Estimated seconds until the process reaches its fd limit at its current growth; only while fds grow.", procLabels, nil)
	descFailures         = prometheus.NewDesc(namespace+"_process_fd_failures_total", "fd-creating syscalls of the process that failed with EMFILE or ENFILE since the agent began tracing it.", append(procLabels, "errno"), nil)
	descSuspects         = prometheus.NewDesc(namespace+"_site_leak_suspects", "Handles from a call site outstanding longer than min_age, top sites by suspects; site=\"other\" sums the rest.", siteLabels, nil)
	descSiteOut          = prometheus.NewDesc(namespace+"_site_outstanding_handles", "Handles from a call site open now, top sites; site=\"other\" sums the rest.", siteLabels, nil)
	descSiteGrowth       = prometheus.NewDesc(namespace+"_site_growth_per_second", "Change of a site's outstanding handles per second over the growth window, top sites.", siteLabels, nil)
	descSiteSettled      = prometheus.NewDesc(namespace+"_site_settled_in_kernel_total", "Handles from a call site closed within the pairing window of their creation, settled in the kernel without a record, top sites by this count; site=\"other\" sums the rest. Handles whose stack the kernel could not yet unwind alone count only in leaktrace_handles_settled_in_kernel_total.", siteLabels, nil)
	descSiteMapped       = prometheus.NewDesc(namespace+"_site_mapped_bytes", "Memory a call site has mapped (mmap, brk) and not unmapped in live processes, top sites by bytes; site=\"other\" sums the rest.", siteLabels, nil)
	descSiteMappedGrowth = prometheus.NewDesc(namespace+"_site_mapped_growth_bytes_per_second", "Change of a site's mapped bytes per second over the growth window, top sites by bytes.", siteLabels, nil)
	descProcs            = prometheus.NewDesc(namespace+"_processes", "Live processes the agent traces, by whether they have per-process series (tracked) or are past limits.max_processes (untracked).", []string{"state"}, nil)
	descYoung            = prometheus.NewDesc(namespace+"_handles_younger_than_min_age", "Handles live processes hold that are not judged yet: made less than min_age ago (threads and exited children too).", nil, nil)
	descExited           = prometheus.NewDesc(namespace+"_processes_exited_total", "Traced processes that exited and were forgotten.", nil, nil)
	descHeld             = prometheus.NewDesc(namespace+"_handles_held_at_exit_total", "Handles (fds, threads, unreaped children) traced processes held as they exited: released by the kernel then, not leaks.", nil, nil)
	descEvents           = prometheus.NewDesc(namespace+"_events_received_total", "Events the kernel side sent.", nil, nil)
	descLost             = prometheus.NewDesc(namespace+"_events_lost_total", "Events the kernel side could not deliver, by reason.", []string{"reason"}, nil)
	descSettled          = prometheus.NewDesc(namespace+"_handles_settled_in_kernel_total", "Handles closed within the pairing window (100 ms) of their creation, or mappings ended with their process within it (exec, exit): paired in the kernel, never sent.", nil, nil)
	descFileRules        = prometheus.NewDesc(namespace+"_unwind_rules_from_file_total", "Unwind rules a new process image took from the rules taught for its files from another process's stacks (each spares a stack copy).", nil, nil)
	descStackMemo        = prometheus.NewDesc(namespace+"_stacks_from_memo_total", "Of the stacks sent as a known site, those the kernel found from a memo of the same walk (the same frame, the stack words that walk read unchanged) without walking the stack.", nil, nil)
	descStackForms       = prometheus.NewDesc(namespace+"_stacks_sent_total", "Creation stacks the kernel sent, by form: site (the hash of a call site the agent knows), new (a site's pcs, once), copy (registers and a copy of the stack, while the kernel learns a site).", []string{"form"}, nil)
	descEventBytes       = prometheus.NewDesc(namespace+"_events_received_bytes_total", "Ring-buffer bytes of the events the kernel side sent.", nil, nil)
	descUnmatched        = prometheus.NewDesc(namespace+"_syscall_exits_unmatched_total", "Exits of followed syscalls (fds, mappings) that needed their enter and found none parked (in flight when tracing began, or the enter was not parked): their result is not seen.", nil, nil)
	descBadRecs          = prometheus.NewDesc(namespace+"_records_malformed_total", "Ring buffer records that failed to decode.", nil, nil)
	descStacks           = prometheus.NewDesc(namespace+"_stacks_dropped_total", "Creation stacks not kept because limits.max_stacks was reached; their handles count with no site.", nil, nil)
	descFailDrops        = prometheus.NewDesc(namespace+"_fd_failure_events_dropped_total", "EMFILE/ENFILE events not handled because the agent was behind.", nil, nil)
	descAlerts           = prometheus.NewDesc(namespace+"_alerts_firing", "Alerts firing now, by level.", []string{"level"}, nil)
	descNotify           = prometheus.NewDesc(namespace+"_alert_notifications_total", "Alert batches handed to a sink, by result.", []string{"sink", "result"}, nil)
	descReady            = prometheus.NewDesc(namespace+"_agent_ready", "1 once the agent has seeded the running processes and evaluated once.", nil, nil)
	descLastEval         = prometheus.NewDesc(namespace+"_agent_last_evaluation_timestamp_seconds", "When the agent last sampled and evaluated alerts.", nil, nil)
)

// Collector exports the agent's state, read at scrape time as const metrics:
// a process's series vanish with it, and no gauge goes stale.
type Collector struct{ a *Agent }

// NewCollector returns the collector of a.
func NewCollector(a *Agent) *Collector { return &Collector{a: a} }

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpen, descLimit, descRatio, descGrowth, descExhaust, descFailures, descSuspects,
		descSiteOut, descSiteGrowth, descSiteSettled, descSiteMapped, descSiteMappedGrowth, descProcs, descYoung, descExited, descHeld, descEvents, descSettled, descStackForms, descStackMemo, descFileRules, descEventBytes, descLost, descUnmatched, descBadRecs, descStacks, descFailDrops,
		descAlerts, descNotify, descReady, descLastEval} {
		ch <- d
	}
	for _, d := range memoryDescs {
		ch <- d
	}
}

// Collect reads the state now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	snap := a.observe(time.Now(), false)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for i := range snap.Processes {
		p := &snap.Processes[i]
		l := []string{strconv.Itoa(int(p.PID)), p.Comm, p.Cgroup}
		for k, n := range p.Usage.FDs {
			if n > 0 {
				gauge(descOpen, float64(n), append(l, event.Kind(k).String())...)
			}
		}
		if p.Usage.Threads > 0 {
			gauge(descOpen, float64(p.Usage.Threads), append(l, event.KindThread.String())...)
		}
		if p.Usage.Children > 0 {
			gauge(descOpen, float64(p.Usage.Children), append(l, event.KindProcess.String())...)
		}
		if p.Limit > 0 && p.Limit < 1<<53 { // "unlimited" has no useful ratio
			gauge(descLimit, float64(p.Limit), l...)
			gauge(descRatio, p.UsageRatio(), l...)
		}
		gauge(descGrowth, p.GrowthPerSec, l...)
		if p.ExhaustSeconds >= 0 {
			gauge(descExhaust, p.ExhaustSeconds, l...)
		}
		for errno, n := range p.Failures {
			counter(descFailures, float64(n), append(l, errnoName(errno))...)
		}
		collectMemory(ch, p, l)
	}
	a.collectIncidents(ch)
	a.mu.Lock()
	top := a.cfg.Limits.TopSites
	a.mu.Unlock()
	var other SiteStat
	for i := range snap.Sites {
		s := &snap.Sites[i]
		if i >= top {
			other.Suspects += s.Suspects
			other.Outstanding += s.Outstanding
			other.GrowthPerSec += s.GrowthPerSec
			continue
		}
		l := []string{s.Key, s.Function(), s.Location(), s.Kind}
		gauge(descSuspects, float64(s.Suspects), l...)
		gauge(descSiteOut, float64(s.Outstanding), l...)
		gauge(descSiteGrowth, s.GrowthPerSec, l...)
	}
	if len(snap.Sites) > top {
		l := []string{"other", "", "", ""}
		gauge(descSuspects, float64(other.Suspects), l...)
		gauge(descSiteOut, float64(other.Outstanding), l...)
		gauge(descSiteGrowth, other.GrowthPerSec, l...)
	}
	collectMapped(gauge, snap.Sites, top)
	collectSettled(counter, snap.Sites, top)
	gauge(descProcs, float64(len(snap.Processes)), "tracked")
	gauge(descProcs, float64(snap.Untracked), "untracked")
	gauge(descYoung, float64(snap.Young))
	counter(descExited, float64(snap.Exited))
	counter(descHeld, float64(snap.HeldAtExit))

	if cn, err := a.Counters(); err == nil {
		counter(descEvents, float64(cn.Sent))
		counter(descSettled, float64(cn.Paired))
		counter(descEventBytes, float64(cn.Bytes))
		counter(descStackForms, float64(cn.StackSite), "site")
		counter(descStackForms, float64(cn.StackNew), "new")
		counter(descStackForms, float64(cn.StackCopy), "copy")
		counter(descStackMemo, float64(cn.StackMemo))
		counter(descFileRules, float64(cn.FileRules))
		counter(descLost, float64(cn.RingbufFull), "ring_buffer_full")
		counter(descLost, float64(cn.InflightFull), "syscall_map_full")
		counter(descLost, float64(cn.TracedFull), "pid_filter_full")
		counter(descLost, float64(cn.RightsDropped), "rights_dropped")
		counter(descLost, float64(cn.Compat), "compat_syscall")
		counter(descUnmatched, float64(cn.MissedExit))
	} else {
		a.log.Warn("reading kernel counters", "err", err)
	}
	counter(descBadRecs, float64(a.sess.BadRecords()))
	counter(descStacks, float64(a.sess.StacksDropped()))
	counter(descFailDrops, float64(a.failsDropped.Load()))
	for level, n := range a.alerts.FiringByLevel() {
		gauge(descAlerts, float64(n), level)
	}
	for _, q := range a.alerts.Sinks() {
		counter(descNotify, float64(q.Sent.Load()), q.Name(), "sent")
		counter(descNotify, float64(q.Failed.Load()), q.Name(), "failed")
		counter(descNotify, float64(q.Dropped.Load()), q.Name(), "dropped")
	}
	ready := 0.0
	if a.Ready() {
		ready = 1
	}
	gauge(descReady, ready)
	if t := a.lastTick.Load(); t != 0 {
		gauge(descLastEval, float64(t)/1e9)
	}
}

// collectMapped exports the top sites by mapped bytes, the rest summed as
// site="other": its own ranking, as the sites that map most are seldom those
// that hold most fds. kind is "mapping" on these series.
// collectSettled ranks sites by their handles settled in the kernel: a busy
// site of short-lived handles has none outstanding, and would never be
// among the top sites by suspects.
func collectSettled(counter func(*prometheus.Desc, float64, ...string), sites []SiteStat, top int) {
	ranked := make([]*SiteStat, 0, len(sites))
	for i := range sites {
		if sites[i].Settled > 0 {
			ranked = append(ranked, &sites[i])
		}
	}
	slices.SortFunc(ranked, func(x, y *SiteStat) int {
		return cmp.Or(cmp.Compare(y.Settled, x.Settled), cmp.Compare(x.Key, y.Key))
	})
	var other uint64
	for i, s := range ranked {
		if i >= top {
			other += s.Settled
			continue
		}
		counter(descSiteSettled, float64(s.Settled), s.Key, s.Function(), s.Location(), s.Kind)
	}
	if len(ranked) > top {
		counter(descSiteSettled, float64(other), "other", "", "", "")
	}
}

func collectMapped(gauge func(*prometheus.Desc, float64, ...string), sites []SiteStat, top int) {
	ranked := make([]*SiteStat, 0, len(sites))
	for i := range sites {
		if sites[i].MappedBytes > 0 || sites[i].MappedGrowthPerSec != 0 {
			ranked = append(ranked, &sites[i])
		}
	}
	slices.SortFunc(ranked, func(x, y *SiteStat) int {
		return cmp.Or(cmp.Compare(y.MappedBytes, x.MappedBytes), cmp.Compare(x.Key, y.Key))
	})
	var bytes, growth float64
	for i, s := range ranked {
		if i >= top {
			bytes += float64(s.MappedBytes)
			growth += s.MappedGrowthPerSec
			continue
		}
		l := []string{s.Key, s.Function(), s.Location(), event.KindMapping.String()}
		gauge(descSiteMapped, float64(s.MappedBytes), l...)
		gauge(descSiteMappedGrowth, s.MappedGrowthPerSec, l...)
	}
	if len(ranked) > top {
		l := []string{"other", "", "", event.KindMapping.String()}
		gauge(descSiteMapped, bytes, l...)
		gauge(descSiteMappedGrowth, growth, l...)
	}
}
