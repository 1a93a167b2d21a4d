package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/event"
)

func mapEv(pid uint32, addr, length uint64, stack event.StackID, t uint64) event.Event {
	return event.Event{Type: event.MapNew, Time: t, PID: pid, TID: pid, Files: tableOf(pid), FD: -1, FD2: -1,
		Kind: event.KindMapping, Addr: addr, Len: length, Stack: stack}
}

// Per-site mapped bytes are exported for the top sites by bytes, with the
// rest summed, apart from the fd series: a site that only maps has no fd
// series, and its growth over the window is its mapped growth.
func TestCollectMapped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.TopSites = 1
	a, _ := testAgent(t, cfg)
	f := withFake(t, a, map[uint32]uint64{601: 1024})
	mono := monotonicNow()
	f.apply(openEv(601, 3, event.KindFile, 1, mono))
	f.apply(mapEv(601, 0x7f0000000000, 8<<20, 4, mono))
	f.apply(mapEv(601, 0x7f1000000000, 1<<20, 5, mono))
	now := time.Now()
	a.tick(now)
	f.apply(mapEv(601, 0x7f2000000000, 4<<20, 4, mono+1))
	a.tick(now.Add(2 * time.Second))

	got := scrape(t, NewCollector(a))
	want := map[string]float64{
		`leaktrace_site_mapped_bytes{function=fn4,kind=mapping,location=srv.c:4,site=site4}`:                   12 << 20,
		`leaktrace_site_mapped_growth_bytes_per_second{function=fn4,kind=mapping,location=srv.c:4,site=site4}`: 2 << 20,
		`leaktrace_site_mapped_bytes{function=,kind=mapping,location=,site=other}`:                             1 << 20,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "leaktrace_site_outstanding_handles{") && strings.Contains(k, "site=site4") {
			t.Errorf("%s: a site that only maps has no fd series", k)
		}
		if strings.HasPrefix(k, "leaktrace_site_mapped_bytes{") && strings.Contains(k, "site=site1") {
			t.Errorf("%s: a site that maps nothing has no mapped series", k)
		}
	}
	// What the dashboard gets: the mapping site, with its bytes.
	var m dashModel
	if err := json.Unmarshal(a.dash.Load().main, &m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range m.Sites {
		if s.Key == "site4" {
			found = s.MappedBytes == 12<<20
		}
	}
	if !found {
		t.Errorf("dashboard sites lack site4's 12 MiB mapped: %+v", m.Sites)
	}
}
