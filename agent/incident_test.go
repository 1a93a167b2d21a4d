package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/incident"
)

func failEv(pid uint32, t uint64) event.Event {
	return event.Event{Type: event.FDFail, Time: t, PID: pid, TID: pid, Comm: "srv", Files: tableOf(pid), Syscall: 257, FD: -1, FD2: -1, Errno: 24}
}

// drain handles the fd failures queued by onEvent, as Run's loop does.
func drain(a *Agent) {
	for {
		select {
		case f := <-a.fails:
			a.fdFailure(f)
		default:
			return
		}
	}
}

// The table is copied when the failure's event is applied: a process that
// exits right after (its exit applied before the agent's loop runs) still
// gets an incident naming what held its fds.
func TestIncidentOutlivesTheProcess(t *testing.T) {
	a, _ := testAgent(t, DefaultConfig())
	f := withFake(t, a, map[uint32]uint64{600: 40})
	a.incidents, _ = incident.Open(t.TempDir(), 5)
	writeStatus(t, 600, 1000, 2000, 0, 9000)
	mono := monotonicNow()
	old := mono - uint64(90*time.Second)
	t0 := time.Now()
	f.apply(opens(600, 3, 10, event.KindFile, 1, old)...)
	a.tick(t0)
	f.apply(opens(600, 13, 20, event.KindFile, 1, old)...)
	a.tick(t0.Add(30 * time.Second)) // fn1 grew by 20
	evs := append(opens(600, 33, 5, event.KindPipe, 2, mono), failEv(600, mono), failEv(600, mono), exitEv(600, mono))
	f.apply(evs...)
	drain(a)
	l := a.incidents.List()
	if len(l) != 1 {
		t.Fatalf("%d incidents, want 1 (the second failure is within the hold)", len(l))
	}
	inc, err := a.incidents.Read(l[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	if inc.PID != 600 || inc.Errno != "EMFILE" || inc.Open != 35 || len(inc.FDs) != 35 || inc.FDLimit != 40 {
		t.Errorf("incident pid %d errno %s open %d fds %d limit %d", inc.PID, inc.Errno, inc.Open, len(inc.FDs), inc.FDLimit)
	}
	if len(inc.Sites) != 2 || inc.Sites[0].Headline.Function != "fn1" || inc.Sites[0].Count != 30 || inc.Sites[0].Kinds["file"] != 30 ||
		inc.Sites[0].OldestAgeSeconds < 89 {
		t.Errorf("sites = %+v, want fn1 ×30 files, 90 s old, first", inc.Sites)
	}
	if inc.Kinds["file"] != 30 || inc.Kinds["pipe"] != 5 {
		t.Errorf("kinds = %v", inc.Kinds)
	}
	if inc.Ages[0].Count != 5 || inc.Ages[2].Count != 30 { // <10s: the pipes; <10m: the files
		t.Errorf("ages = %+v", inc.Ages)
	}
	if inc.Memory == nil || inc.Memory.Resident != 3000<<10 || inc.Memory.Virtual != 9000<<10 {
		t.Errorf("memory = %+v, want /proc's", inc.Memory)
	}
	if len(inc.Growing) != 1 || inc.Growing[0].Headline.Function != "fn1" || inc.Growing[0].Growth != 20 || inc.Sites[0].Growth != 20 {
		t.Errorf("growing sites %+v, want fn1 +20", inc.Growing)
	}
	if got := inc.TopSites(1); got != "fn1 (srv.c:1) ×30" {
		t.Errorf("top sites %q", got)
	}
}

// While the process lives, the EMFILE alert carries the incident's top
// sites and where to read it.
func TestExhaustedAlertNamesTheIncident(t *testing.T) {
	a, _ := testAgent(t, DefaultConfig())
	f := withFake(t, a, map[uint32]uint64{700: 20})
	a.incidents, _ = incident.Open("", 5)
	mono := monotonicNow()
	f.apply(append(opens(700, 3, 17, event.KindFile, 3, mono), failEv(700, mono))...)
	drain(a)
	var got []string
	for _, al := range a.Firing() {
		if al.Name == AlertFDExhausted {
			got = append(got, al.Annotations["top_sites"], al.Annotations["incident"])
		}
	}
	if len(got) != 2 || got[0] != "fn3 (srv.c:3) ×17" || !strings.HasPrefix(got[1], "/debug/incidents/") {
		t.Fatalf("EMFILE alert annotations %q", got)
	}
	name := strings.TrimPrefix(got[1], "/debug/incidents/")
	if _, err := a.incidents.Read(name); err != nil {
		t.Errorf("the alert's incident: %v", err)
	}
	// Another failure past the hold takes a new snapshot.
	a.incidentAt[700] = time.Now().Add(-a.cfg.Thresholds.FDFailureHold - time.Second)
	f.apply(failEv(700, mono))
	drain(a)
	if n := len(a.incidents.List()); n != 2 {
		t.Errorf("%d incidents after a failure past the hold, want 2", n)
	}
}

// The incident store is opened once: a reload that changes it says so and
// keeps the one in use.
func TestReloadKeepsTheIncidentStore(t *testing.T) {
	a, logs := testAgent(t, DefaultConfig())
	cfg := DefaultConfig()
	cfg.Incidents = Incidents{Dir: "/elsewhere", Max: 3}
	if err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if a.cfg.Incidents != DefaultConfig().Incidents || !strings.Contains(logs.String(), "incidents.dir/max need a restart") {
		t.Errorf("incidents after reload %+v; log:\n%s", a.cfg.Incidents, logs)
	}
}
