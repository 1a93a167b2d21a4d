//go:build linux

package agent

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/alert"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/procfs"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/session"
)

// Snapshot is the state metrics and alerts are built from.
type Snapshot struct {
	Processes  []ProcessStat // by pid
	Untracked  int           // live processes past limits.max_processes: no series, no alerts
	Sites      []SiteStat    // most suspects first
	Exited     uint64        // processes reported and forgotten since start
	HeldAtExit uint64        // handles those processes held as they exited
	// Young is what live processes hold that is not judged yet: younger
	// than min_age (handles and threads made, children exited, since then).
	Young int
}

// ProcessStat is one live process.
type ProcessStat struct {
	PID          uint32
	Comm, Exe    string
	Cgroup       string
	Usage        aggregator.Usage
	Limit        uint64  // RLIMIT_NOFILE soft; 0 when unknown
	GrowthPerSec float64 // open fds, over the growth window
	// ExhaustSeconds estimates when the fd limit is reached at the current
	// growth; negative when fds are not growing.
	ExhaustSeconds float64
	Zombies        int // children exited, unreaped for longer than min_age
	Failures       map[int32]uint64
	LastFail       time.Time
	LastErrno      int32
	// Memory as last sampled (MemoryOK false when unreadable: a zombie);
	// MemoryLimit is the cgroup's memory limit (v2 memory.max, else v1
	// memory.limit_in_bytes), 0 when none.
	Memory       procfs.Memory
	MemoryOK     bool
	MemoryLimit  uint64
	MemoryGrowth float64 // resident bytes per second over the growth window
	// MemorySustained is the lower of the two half-windows' growth rates;
	// MemoryWindowFull says the window is covered.
	MemorySustained  float64
	MemoryWindowFull bool
	// Incident is the name of the last fd-exhaustion incident and
	// IncidentTop the sites it named.
	Incident, IncidentTop string
	IncidentAt            time.Time
}

// UsageRatio is open fds over the limit; 0 when the limit is unknown.
func (p *ProcessStat) UsageRatio() float64 {
	if p.Limit == 0 || p.Limit == math.MaxUint64 {
		return 0
	}
	return float64(p.Usage.Open) / float64(p.Limit)
}

// SiteStat is one creation stack's handles across live processes.
type SiteStat struct {
	ID           event.StackID
	Key          string
	Headline     report.Frame
	Kind         string // of the first handle it made; "" when unknown (only dups seen)
	Outstanding  int
	Suspects     int // outstanding longer than min_age
	Growth       int // outstanding now minus a growth window ago
	WindowFull   bool
	GrowthPerSec float64
	// MappedBytes is what it has mapped (mmap, brk) in live processes now;
	// MappedGrowthPerSec the change over the growth window, in bytes/s.
	MappedBytes        uint64
	MappedGrowthPerSec float64
	// Settled counts its handles settled in the kernel (closed within the
	// pairing window, never sent) since the site appeared; SettledPerSec
	// is their rate over the growth window (a pool that does not pool).
	Settled       uint64
	SettledPerSec float64
}

// Function and Location label a site.
func (s *SiteStat) Function() string { return s.Headline.Function }

func (s *SiteStat) Location() string {
	if s.Headline.File == "" {
		return s.Headline.Module
	}
	return s.Headline.File + ":" + strconv.Itoa(s.Headline.Line)
}

// monotonicNow is the clock kernel event times use, in ns.
func monotonicNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

// observe reads the live state; with sample, it also records this moment in
// every growth window (evaluations sample, scrapes only read).
func (a *Agent) observe(now time.Time, sample bool) *Snapshot {
	type live struct {
		info aggregator.ProcessInfo
		u    aggregator.Usage
	}
	var lives []live
	var outstanding map[event.StackID]int
	var mapped map[event.StackID]aggregator.MappedSite
	suspects := make(map[event.StackID]int)
	kinds := make(map[event.StackID]event.Kind)
	zombies := make(map[uint32]int)
	young := 0
	mono := monotonicNow()
	a.sess.With(func(g *aggregator.Aggregator) {
		// Live ones only: a gone process can share its pid with a live
		// one (the pid was taken again before its exit was seen), and
		// two series with one pid are dropped from the scrape.
		for _, p := range g.LiveProcesses() {
			if u, ok := g.Usage(p.PID); ok {
				lives = append(lives, live{p, u})
			}
		}
		outstanding = g.Outstanding()
		mapped = g.MappedLive()
		for id := range outstanding {
			if k, ok := a.stackKinds[id]; ok {
				kinds[id] = k
			}
		}
		young = len(g.Young(mono))
		for _, l := range g.Leaks(mono) {
			switch l.Reason {
			case aggregator.ReasonZombie:
				zombies[l.PID]++
				fallthrough
			case aggregator.ReasonOutstanding:
				suspects[l.Stack]++
			}
		}
	})

	// New sites are symbolized before a.mu is taken: it may read ELF and
	// DWARF, and scrapes and fd-failure alerts must not wait on it. Only
	// sampling (the tick) adds sites, so none appears in between.
	var fresh map[event.StackID]session.SiteInfo
	var settled map[event.StackID]uint64
	if sample {
		var err error
		if settled, err = a.sess.TakeSettled(); err != nil {
			a.log.Debug("settled counts", "err", err)
		}
		var ids []event.StackID
		a.mu.Lock()
		for id := range outstanding {
			if id != 0 && a.sites[id] == nil {
				ids = append(ids, id)
			}
		}
		for id := range mapped {
			if _, ok := outstanding[id]; !ok && id != 0 && a.sites[id] == nil {
				ids = append(ids, id)
			}
		}
		for id := range settled {
			_, o := outstanding[id]
			_, m := mapped[id]
			if !o && !m && id != 0 && a.sites[id] == nil {
				ids = append(ids, id)
			}
		}
		a.mu.Unlock()
		fresh = make(map[event.StackID]session.SiteInfo, len(ids))
		for _, id := range ids {
			fresh[id] = a.sess.Site(id)
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	cfg := a.cfg
	span := cfg.Thresholds.GrowthWindow
	// Untracked is counted afresh from the live set: processes come and go.
	snap := &Snapshot{Exited: a.exited, HeldAtExit: a.heldAtExit, Young: young}
	alive := make(map[uint32]bool, len(lives))
	cgLimits := make(map[string]uint64) // memory limits by cgroup, read once per sample
	for _, l := range lives {
		pid := l.info.PID
		alive[pid] = true
		p := a.procs[pid]
		if p == nil {
			if len(a.procs) >= cfg.Limits.MaxProcesses {
				snap.Untracked++
				continue
			}
			p = a.newProc(pid, l.info.Comm)
			a.procs[pid] = p
		}
		p.comm = l.info.Comm
		if l.info.Exe != "" {
			p.exe = l.info.Exe
		}
		if sample || p.limit == 0 {
			// A process may change its own limit (setrlimit, prlimit) at any time.
			lim, err := procfs.NoFileLimit(int(pid))
			if err == nil {
				p.limit = lim
			}
		}
		if sample {
			p.open.add(now, l.u.Open, span)
			p.sampleMemory(now, span, cgLimits)
		}
		ps := ProcessStat{PID: pid, Comm: p.comm, Exe: p.exe, Cgroup: p.cgroup, Usage: l.u, Limit: p.limit,
			GrowthPerSec: p.open.rate(span), ExhaustSeconds: -1, Zombies: zombies[pid],
			Failures: maps2(p.failures), LastFail: p.lastFail, LastErrno: p.lastErrno,
			Memory: p.mem, MemoryOK: p.memOK, MemoryLimit: p.memLimit, MemoryGrowth: p.resident.rate(span),
			Incident: p.incident, IncidentTop: p.incidentTop, IncidentAt: p.incidentAt}
		ps.MemorySustained, ps.MemoryWindowFull = p.resident.sustainedRate(span)
		if ps.GrowthPerSec > 0 && p.limit != 0 && p.limit != math.MaxUint64 && uint64(l.u.Open) < p.limit {
			ps.ExhaustSeconds = float64(p.limit-uint64(l.u.Open)) / ps.GrowthPerSec
		}
		snap.Processes = append(snap.Processes, ps)
	}
	if sample {
		for pid := range a.procs {
			if !alive[pid] {
				delete(a.procs, pid) // gone, or never traced (an fd failure of an untraced process)
			}
		}
	}
	slices.SortFunc(snap.Processes, func(x, y ProcessStat) int { return cmp.Compare(x.PID, y.PID) })

	if sample {
		for id, n := range outstanding {
			if id == 0 {
				continue
			}
			st := a.siteFor(id, fresh)
			if st == nil {
				continue
			}
			if k, ok := kinds[id]; ok && st.kind == "" {
				st.kind = k.String()
			}
			st.outstanding.add(now, n, span)
		}
		for id, m := range mapped {
			if id == 0 {
				continue
			}
			st := a.siteFor(id, fresh)
			if st == nil {
				continue
			}
			st.mapped.add(now, int(m.Bytes), span)
		}
		for id, n := range settled {
			if st := a.siteFor(id, fresh); st != nil {
				st.settled += n
				st.settledAt = now
			}
		}
		for id, st := range a.sites {
			_, fds := outstanding[id]
			_, maps := mapped[id]
			if st.settled > 0 {
				st.settledW.add(now, int(min(st.settled, math.MaxInt)), span)
			}
			if now.Sub(st.settledAt) < span {
				continue // busy with short-lived handles lately: not idle
			}
			if !fds {
				st.outstanding.add(now, 0, span)
			}
			if !maps && len(st.mapped.s) > 0 { // a site that never mapped keeps no samples
				st.mapped.add(now, 0, span)
			}
			if !fds && !maps && st.outstanding.idle() && st.mapped.idle() {
				delete(a.sites, id)
			}
		}
	}
	for id, st := range a.sites {
		if st.info.Internal || st.info.Key == "" {
			continue
		}
		d, _, full := st.outstanding.growth(span)
		s := SiteStat{ID: id, Key: st.info.Key, Headline: st.info.Headline, Kind: st.kind, Outstanding: outstanding[id],
			Suspects: suspects[id], Growth: d, WindowFull: full, GrowthPerSec: st.outstanding.rate(span),
			MappedBytes: mapped[id].Bytes, MappedGrowthPerSec: st.mapped.rate(span), Settled: st.settled, SettledPerSec: st.settledW.rate(span)}
		snap.Sites = append(snap.Sites, s)
	}
	snap.Sites = mergeByKey(snap.Sites)
	slices.SortFunc(snap.Sites, func(x, y SiteStat) int {
		return cmp.Or(cmp.Compare(y.Suspects, x.Suspects), cmp.Compare(y.Outstanding, x.Outstanding), cmp.Compare(x.Key, y.Key), cmp.Compare(x.ID, y.ID))
	})
	return snap
}

// mergeByKey makes one SiteStat of the stacks that are one site: the same
// code reached in different process images (or through a site the kernel
// shares by file and a per-image one) is several stacks with one key, and
// would otherwise be several series with the same labels. Counts and rates
// add; the lowest id stands for them.
func mergeByKey(sites []SiteStat) []SiteStat {
	at := make(map[string]int, len(sites))
	out := sites[:0]
	for _, s := range sites {
		i, ok := at[s.Key]
		if !ok {
			at[s.Key] = len(out)
			out = append(out, s)
			continue
		}
		m := &out[i]
		if s.ID < m.ID {
			m.ID = s.ID
		}
		m.Kind = cmp.Or(m.Kind, s.Kind)
		m.Outstanding += s.Outstanding
		m.Suspects += s.Suspects
		m.Growth += s.Growth
		m.WindowFull = m.WindowFull && s.WindowFull
		m.GrowthPerSec += s.GrowthPerSec
		m.MappedBytes += s.MappedBytes
		m.MappedGrowthPerSec += s.MappedGrowthPerSec
		m.Settled += s.Settled
		m.SettledPerSec += s.SettledPerSec
	}
	clear(sites[len(out):])
	return out
}

func maps2(m map[int32]uint64) map[int32]uint64 {
	out := make(map[int32]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Alert names.
const (
	AlertFDUsage      = "LeaktraceFDUsageHigh"
	AlertFDExhausted  = "LeaktraceFDExhausted"
	AlertHandleGrowth = "LeaktraceHandleLeakGrowth"
	AlertThreadLeak   = "LeaktraceThreadLeak"
	AlertChildLeak    = "LeaktraceChildProcessLeak"
)

// rules turns a snapshot into the alerts whose condition holds now.
func (a *Agent) rules(snap *Snapshot, now time.Time) []alert.Alert {
	a.mu.Lock()
	th := a.cfg.Thresholds
	a.mu.Unlock()
	var out []alert.Alert
	for i := range snap.Processes {
		p := &snap.Processes[i]
		labels := func() map[string]string {
			return map[string]string{"pid": strconv.Itoa(int(p.PID)), "comm": p.Comm, "cgroup": p.Cgroup}
		}
		ratio := 100 * p.UsageRatio()
		level := ""
		switch {
		case ratio >= th.FDCritical:
			level = alert.LevelCritical
		case ratio >= th.FDError:
			level = alert.LevelError
		case ratio >= th.FDWarn:
			level = alert.LevelWarning
		}
		failing := !p.LastFail.IsZero() && now.Sub(p.LastFail) <= th.FDFailureHold
		var top string
		if level != "" || failing {
			top = a.topSites(p.PID, 3)
		}
		// At a failure, the sites the incident saw at that moment.
		var incTop, incPath string
		if failing && p.Incident != "" && now.Sub(p.IncidentAt) <= th.FDFailureHold {
			incTop, incPath = p.IncidentTop, "/debug/incidents/"+p.Incident
		}
		if level != "" {
			out = append(out, alert.Alert{Name: AlertFDUsage, Level: level, Labels: labels(), Annotations: map[string]string{
				"summary":   fmt.Sprintf("pid %d (%s) has %d of its %d fds open (%.0f%%)", p.PID, p.Comm, p.Usage.Open, p.Limit, ratio),
				"top_sites": top, "exe": p.Exe,
			}})
		}
		if failing {
			ann := map[string]string{
				"summary":   fmt.Sprintf("pid %d (%s) failed to open an fd: %s (%d of %d open)", p.PID, p.Comm, errnoName(p.LastErrno), p.Usage.Open, p.Limit),
				"top_sites": cmp.Or(incTop, top), "exe": p.Exe,
			}
			if incPath != "" {
				ann["incident"] = incPath
			}
			out = append(out, alert.Alert{Name: AlertFDExhausted, Level: alert.LevelCritical, Labels: labels(), Annotations: ann})
		}
		if p.Zombies >= th.ZombiesMin {
			out = append(out, alert.Alert{Name: AlertChildLeak, Level: alert.LevelWarning, Labels: labels(), Annotations: map[string]string{
				"summary": fmt.Sprintf("pid %d (%s) left %d exited children unreaped for over %v", p.PID, p.Comm, p.Zombies, th.MinAge),
				"exe":     p.Exe,
			}})
		}
	}
	out = append(out, memoryRules(snap, th)...)
	for i := range snap.Sites {
		s := &snap.Sites[i]
		if !s.WindowFull || s.Growth < th.GrowthMin {
			continue
		}
		name := AlertHandleGrowth
		switch s.Kind {
		case event.KindThread.String():
			name = AlertThreadLeak
		case event.KindProcess.String():
			name = AlertChildLeak
		}
		out = append(out, alert.Alert{Name: name, Level: alert.LevelWarning,
			Labels: map[string]string{"site": s.Key, "function": s.Function(), "location": s.Location(), "kind": s.Kind},
			Annotations: map[string]string{
				"summary": fmt.Sprintf("%d more %s handles outstanding from %s (%s) than %v ago; %d now", s.Growth, kindOr(s.Kind), s.Function(), s.Location(), th.GrowthWindow, s.Outstanding),
			}})
	}
	return out
}

func kindOr(k string) string {
	if k == "" {
		return "handle"
	}
	return k
}

// topSites names the sites holding most of pid's open fds: "function
// (file:line) ×N; …". Handles from before tracing have no site.
func (a *Agent) topSites(pid uint32, n int) string {
	counts := make(map[event.StackID]int)
	a.sess.With(func(g *aggregator.Aggregator) {
		for _, h := range g.Live(pid) {
			counts[h.Stack]++
		}
	})
	ids := make([]event.StackID, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y event.StackID) int { return cmp.Or(cmp.Compare(counts[y], counts[x]), cmp.Compare(x, y)) })
	var parts []string
	for _, id := range ids {
		if len(parts) == n {
			break
		}
		if id == 0 {
			parts = append(parts, fmt.Sprintf("(open before tracing or no stack) ×%d", counts[id]))
			continue
		}
		info := a.siteInfo(id)
		st := SiteStat{Headline: info.Headline}
		parts = append(parts, fmt.Sprintf("%s (%s) ×%d", st.Function(), st.Location(), counts[id]))
	}
	return strings.Join(parts, "; ")
}

// siteFor is the state of site id, made from fresh when it is new; nil when
// the site is not known yet.
func (a *Agent) siteFor(id event.StackID, fresh map[event.StackID]session.SiteInfo) *siteState {
	if st := a.sites[id]; st != nil {
		return st
	}
	info, ok := fresh[id]
	if !ok {
		return nil
	}
	st := &siteState{info: info}
	a.sites[id] = st
	return st
}
