package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/alert"
	"github.com/leaktrace/leaktrace/event"
)

func TestDeliveryAttempts(t *testing.T) {
	for _, tc := range []struct{ set, want int }{{0, 3}, {1, 1}, {2, 2}, {3, 3}, {7, 7}} {
		if got := delivery(&HTTPSink{URL: "http://x", Attempts: tc.set}).Attempts; got != tc.want {
			t.Errorf("attempts: %d gives %d tries, want %d", tc.set, got, tc.want)
		}
	}
}

// testAgent is an agent with no session: enough for Reload and rules;
// withFake gives it one.
func testAgent(t *testing.T, cfg Config) (*Agent, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	a := &Agent{log: slog.New(slog.NewTextHandler(&logs, nil)), cfg: cfg, interval: time.Second,
		fails: make(chan fdFailure, 16), stackKinds: make(map[event.StackID]event.Kind),
		procs: make(map[uint32]*procState), sites: make(map[event.StackID]*siteState)}
	sinks, err := a.sinkQueues(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.alerts = alert.NewManager(sinks...)
	t.Cleanup(func() {
		for _, q := range a.alerts.Sinks() {
			q.Close(t.Context())
		}
	})
	return a, &logs
}

func TestReloadKeepsWhatTheSessionFixed(t *testing.T) {
	a, logs := testAgent(t, DefaultConfig())
	cfg := DefaultConfig()
	cfg.Thresholds.MinAge = 5 * time.Minute
	cfg.Limits.MaxStacks = 10
	cfg.Thresholds.ZombiesMin = 2
	cfg.Limits.TopSites = 3
	if err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	got := a.cfg
	if got.Thresholds.MinAge != time.Minute || got.Limits.MaxStacks != DefaultConfig().Limits.MaxStacks {
		t.Errorf("min_age %v, max_stacks %d after reload: changed, but the session still uses the old ones", got.Thresholds.MinAge, got.Limits.MaxStacks)
	}
	if got.Thresholds.ZombiesMin != 2 || got.Limits.TopSites != 3 {
		t.Errorf("zombies_min %d, top_sites %d after reload: not applied", got.Thresholds.ZombiesMin, got.Limits.TopSites)
	}
	if !strings.Contains(logs.String(), "min_age/max_stacks need a restart") {
		t.Errorf("no warning logged:\n%s", logs)
	}
	// The alert text names the min_age suspects are judged by.
	snap := &Snapshot{Processes: []ProcessStat{{PID: 7, Comm: "srv", Zombies: 2}}}
	alerts := a.rules(snap, time.Now())
	if len(alerts) != 1 || !strings.Contains(alerts[0].Annotations["summary"], "over 1m0s") {
		t.Errorf("alerts = %+v, want one naming min_age 1m0s", alerts)
	}

	logs.Reset()
	if err := a.Reload(a.cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "need a restart") {
		t.Errorf("warned with nothing fixed changed:\n%s", logs)
	}
}

func TestTickForgetsEvictedStacks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Thresholds.GrowthWindow = time.Minute
	a, _ := testAgent(t, cfg)
	f := withFake(t, a, map[uint32]uint64{300: 1024})
	mono := monotonicNow()
	f.apply(openEv(300, 3, event.KindFile, 1, mono), openEv(300, 4, event.KindSocket, 2, mono))
	t0 := time.Now()
	a.tick(t0)
	if a.sites[1] == nil || a.sites[2] == nil {
		t.Fatalf("sites after the first tick: %v", a.sites)
	}

	// Stack 2's handle closes; stack 1's stays open through every tick.
	f.apply(closeEv(300, 4, mono+1))
	for i := 1; i <= 3; i++ {
		a.tick(t0.Add(time.Duration(i) * cfg.Thresholds.GrowthWindow))
	}
	if f.stacks.Get(2) != nil || f.stacks.Get(1) == nil {
		t.Fatalf("evicted wrong: stack 1 %v, stack 2 %v", f.stacks.Get(1), f.stacks.Get(2))
	}
	f.With(func(*aggregator.Aggregator) {
		if _, ok := a.stackKinds[2]; ok {
			t.Error("kind of the evicted stack 2 kept")
		}
		if a.stackKinds[1] != event.KindFile {
			t.Errorf("kind of the live stack 1 = %v, want file", a.stackKinds[1])
		}
	})
	if a.sites[2] != nil {
		t.Error("site state of the evicted stack 2 kept")
	}
	// The live handle's site is still its own in the metrics.
	snap := a.observe(t0.Add(4*cfg.Thresholds.GrowthWindow), false)
	if len(snap.Sites) != 1 || snap.Sites[0].Key != "site1" || snap.Sites[0].Kind != "file" || snap.Sites[0].Outstanding != 1 {
		t.Errorf("sites after eviction: %+v", snap.Sites)
	}
}
