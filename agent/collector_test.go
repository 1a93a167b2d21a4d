package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/tracer"
)

// scrape gathers c through a pedantic registry (which also checks that
// Collect sends only what Describe declares) as "name{k=v,…}" -> value.
func scrape(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(ls)
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[fam.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

func TestCollect(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.MaxProcesses = 2
	cfg.Limits.TopSites = 1
	a, _ := testAgent(t, cfg)
	f := withFake(t, a, map[uint32]uint64{501: 100, 502: 100, 503: 100})
	f.counters = tracer.Counters{Sent: 1000, RingbufFull: 1, InflightFull: 2, TracedFull: 3, RightsDropped: 4, MissedExit: 5, Paired: 6,
		StackSite: 900, StackNew: 7, StackCopy: 40, FileRules: 12, StackMemo: 850}
	mono := monotonicNow()
	f.apply(opens(501, 3, 80, event.KindFile, 1, mono)...)
	f.apply(opens(502, 3, 2, event.KindSocket, 2, mono)...)
	f.apply(openEv(503, 3, event.KindPipe, 3, mono))
	now := time.Now()
	a.fdFailure(fdFailure{pid: 501, comm: "srv", errno: 24, at: now})
	a.tick(now)

	got := scrape(t, NewCollector(a))
	want := map[string]float64{
		`leaktrace_processes{state=tracked}`:                                                     2,
		`leaktrace_processes{state=untracked}`:                                                   1,
		`leaktrace_process_open_handles{cgroup=,comm=,kind=file,pid=501}`:                        80,
		`leaktrace_process_fd_usage_ratio{cgroup=,comm=,pid=501}`:                                0.8,
		`leaktrace_process_fd_failures_total{cgroup=,comm=,errno=EMFILE,pid=501}`:                1,
		`leaktrace_site_outstanding_handles{function=fn1,kind=file,location=srv.c:1,site=site1}`: 80,
		`leaktrace_site_leak_suspects{function=fn1,kind=file,location=srv.c:1,site=site1}`:       0,
		`leaktrace_site_outstanding_handles{function=,kind=,location=,site=other}`:               3,
		`leaktrace_events_received_total{}`:                                                      1000,
		`leaktrace_handles_younger_than_min_age{}`:                                               83, // all made now, min_age 10s
		`leaktrace_events_lost_total{reason=ring_buffer_full}`:                                   1,
		`leaktrace_events_lost_total{reason=syscall_map_full}`:                                   2,
		`leaktrace_events_lost_total{reason=pid_filter_full}`:                                    3,
		`leaktrace_events_lost_total{reason=rights_dropped}`:                                     4,
		`leaktrace_syscall_exits_unmatched_total{}`:                                              5,
		`leaktrace_records_malformed_total{}`:                                                    2,
		`leaktrace_stacks_dropped_total{}`:                                                       3,
		`leaktrace_stacks_sent_total{form=site}`:                                                 900,
		`leaktrace_stacks_sent_total{form=new}`:                                                  7,
		`leaktrace_stacks_sent_total{form=copy}`:                                                 40,
		`leaktrace_unwind_rules_from_file_total{}`:                                               12,
		`leaktrace_stacks_from_memo_total{}`:                                                     850,
		`leaktrace_alerts_firing{level=critical}`:                                                1, // EMFILE
		`leaktrace_alerts_firing{level=warning}`:                                                 1, // 80% fds
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	var lost float64
	for k, v := range got {
		if strings.HasPrefix(k, "leaktrace_events_lost_total{") {
			lost += v
		}
	}
	if lost != float64(f.counters.Lost()) {
		t.Errorf("events lost sum to %v, the kernel side lost %d", lost, f.counters.Lost())
	}
	for k := range got {
		if strings.Contains(k, "pid=503") {
			t.Errorf("%s: pid 503 is past max_processes and must have no series", k)
		}
	}
}
