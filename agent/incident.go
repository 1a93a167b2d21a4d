//go:build linux

package agent

import (
	"cmp"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/incident"
	"github.com/leaktrace/leaktrace/procfs"
)

// DefaultIncidentDir is where incidents go unless configured otherwise
// (systemd's StateDirectory=leaktrace makes it writable).
const DefaultIncidentDir = "/var/lib/leaktrace/incidents"

// openIncidents opens the configured store; a directory that cannot be
// used falls back to memory, with a warning, rather than stop the agent.
func openIncidents(c Incidents, log *slog.Logger) (*incident.Store, error) {
	s, err := incident.Open(c.Dir, c.Max)
	if err == nil {
		return s, nil
	}
	log.Warn("incidents kept in memory only", "dir", c.Dir, "err", err)
	return incident.Open("", c.Max)
}

// tableCopy is a process's state at an fd failure, copied in the event path.
type tableCopy struct {
	pid      uint32
	comm     string
	exe      string
	syscall  int
	mono     uint64 // monotonic ns when copied: ages are measured to it
	handles  []aggregator.Handle
	usage    aggregator.Usage
	limit    uint64
	mem      procfs.Memory
	memOK    bool
	lostSeen bool
}

// snapshotTable copies pid's fd table when an incident is due (its first
// failure, or the first past the hold time). It runs under the session's
// lock, right after the failing syscall's event: the table is the one the
// process held when it failed, and what /proc still tells is read now,
// before the process can exit.
func (a *Agent) snapshotTable(e *event.Event, now time.Time) *tableCopy {
	if a.agg == nil || a.incidents == nil || !a.agg.Alive(e.PID) {
		return nil
	}
	if a.incidentAt == nil {
		a.incidentAt = make(map[uint32]time.Time)
	}
	if last, ok := a.incidentAt[e.PID]; ok && now.Sub(last) < time.Duration(a.incidentHold.Load()) {
		return nil
	}
	a.incidentAt[e.PID] = now
	t := &tableCopy{pid: e.PID, comm: e.Comm, syscall: int(e.Syscall), mono: monotonicNow(), handles: a.agg.Live(e.PID)}
	t.usage, _ = a.agg.Usage(e.PID)
	pid := int(e.PID)
	t.exe = procfs.Exe(pid)
	if lim, err := procfs.NoFileLimit(pid); err == nil {
		t.limit = lim
	}
	if m, err := procfs.ReadMemory(pid); err == nil {
		t.mem, t.memOK = m, true
	}
	return t
}

// recordIncident symbolizes a copied table and keeps it as an incident.
// It runs in the agent's loop, off the event path.
func (a *Agent) recordIncident(f fdFailure) {
	t := f.table
	inc := &incident.Incident{Time: f.at, PID: int(t.pid), Comm: t.comm, Exe: t.exe, Errno: errnoName(f.errno),
		Syscall: t.syscall, FDLimit: t.limit, Open: t.usage.Open, Kinds: make(map[string]int)}
	inc.Host, _ = os.Hostname()
	if cn, err := a.sess.Counters(); err == nil {
		inc.Complete = cn.Lost() == 0
	}
	if t.memOK {
		m := t.mem
		inc.Memory = &incident.Memory{Resident: m.Resident, Anon: m.Anon, File: m.File, Shmem: m.Shmem, Virtual: m.Virtual}
	}
	a.mu.Lock()
	p := a.procs[t.pid]
	if p != nil {
		inc.Cgroup = p.cgroup
		if inc.Exe == "" {
			inc.Exe = p.exe
		}
		if inc.FDLimit == 0 { // gone before /proc was read: the last sampled limit
			inc.FDLimit = p.limit
		}
		if inc.Memory == nil && p.memOK {
			m := p.mem
			inc.Memory = &incident.Memory{Resident: m.Resident, Anon: m.Anon, File: m.File, Shmem: m.Shmem, Virtual: m.Virtual}
		}
	}
	a.mu.Unlock()

	bySite := make(map[event.StackID]*incident.Site)
	var ages []float64
	for _, h := range t.handles {
		age := 0.0
		if t.mono > h.Created {
			age = float64(t.mono-h.Created) / 1e9
		}
		ages = append(ages, age)
		kind := h.Kind.String()
		inc.Kinds[kind]++
		s := bySite[h.Stack]
		if s == nil {
			s = &incident.Site{Kinds: make(map[string]int)}
			if h.Stack != 0 {
				info := a.siteInfo(h.Stack)
				s.Key, s.Headline, s.Stack = info.Key, info.Headline, info.Stack
			}
			bySite[h.Stack] = s
		}
		s.Count++
		s.Kinds[kind]++
		s.OldestAgeSeconds = max(s.OldestAgeSeconds, age)
		inc.FDs = append(inc.FDs, incident.FD{FD: h.FD, Kind: kind, Target: h.Target, AgeSeconds: age, Site: s.Key})
	}
	inc.Ages = incident.AgeBuckets(ages)
	a.mu.Lock()
	span := a.cfg.Thresholds.GrowthWindow
	for id, s := range bySite {
		if st := a.sites[id]; st != nil && id != 0 {
			s.Growth, _, _ = st.outstanding.growth(span)
			s.GrowthPerSecond = st.outstanding.rate(span)
		}
		inc.Sites = append(inc.Sites, *s)
	}
	// The sites growing most, whichever process holds their handles (one
	// key may be several stacks: mergeByKey).
	growing := make(map[string]int)
	for _, st := range a.sites {
		d, _, _ := st.outstanding.growth(span)
		if d <= 0 || st.info.Internal || st.info.Key == "" {
			continue
		}
		if i, ok := growing[st.info.Key]; ok {
			g := &inc.Growing[i]
			g.Count += outstandingOf(st)
			g.Growth += d
			g.GrowthPerSecond += st.outstanding.rate(span)
			continue
		}
		growing[st.info.Key] = len(inc.Growing)
		inc.Growing = append(inc.Growing, incident.Site{Key: st.info.Key, Headline: st.info.Headline, Count: outstandingOf(st),
			Growth: d, GrowthPerSecond: st.outstanding.rate(span)})
	}
	a.mu.Unlock()
	slices.SortFunc(inc.Sites, func(x, y incident.Site) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Key, y.Key))
	})
	slices.SortFunc(inc.Growing, func(x, y incident.Site) int {
		return cmp.Or(cmp.Compare(y.Growth, x.Growth), cmp.Compare(x.Key, y.Key))
	})
	inc.Growing = inc.Growing[:min(len(inc.Growing), 5)]

	name, err := a.incidents.Add(inc)
	if err != nil {
		a.log.Warn("incident not kept", "pid", t.pid, "err", err)
		return
	}
	a.log.Warn("fd exhaustion incident", "pid", t.pid, "comm", t.comm, "errno", inc.Errno, "open", inc.Open,
		"incident", name, "top_sites", inc.TopSites(3))
	a.mu.Lock()
	if p := a.procs[t.pid]; p != nil {
		p.incident, p.incidentTop, p.incidentAt = name, inc.TopSites(3), f.at
	}
	a.mu.Unlock()
}

// outstandingOf is a site's last sampled outstanding count.
func outstandingOf(st *siteState) int {
	if n := len(st.outstanding.s); n > 0 {
		return st.outstanding.s[n-1].n
	}
	return 0
}
