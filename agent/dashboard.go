//go:build linux

package agent

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/leaktrace/leaktrace/alert"
	"github.com/leaktrace/leaktrace/incident"
	"github.com/leaktrace/leaktrace/python"
	"github.com/leaktrace/leaktrace/report"
)

// Bounds of what the dashboard is sent: enough to find the leak, small
// enough for a browser at 1,000 processes.
const (
	dashSites     = 50  // sites listed, with their stacks
	dashFlame     = 400 // sites in the flame graph
	dashFlameDeep = 48  // frames per flame stack
	dashIncidents = 20
)

// dashboard is what the pages are served from: encoded once per evaluation.
type dashboard struct {
	main    []byte                  // /api/dashboard
	history map[uint32]*dashHistory // /api/process?pid=N, encoded when asked for
}

type dashModel struct {
	Generated     time.Time          `json:"generated"`
	Interval      float64            `json:"interval_seconds"`
	GrowthWindow  float64            `json:"growth_window_seconds"`
	Thresholds    dashThresholds     `json:"thresholds"`
	Untracked     int                `json:"untracked"`
	Exited        uint64             `json:"exited"`
	Processes     []dashProcess      `json:"processes"`
	Sites         []dashSite         `json:"sites"`
	Alerts        []alert.Alert      `json:"alerts"`
	Incidents     []incident.Summary `json:"incidents"`
	Flame         *flameNode         `json:"flame"`
	FlameSites    int                `json:"flame_sites"`
	HandlesNoSite int                `json:"handles_without_site"`
}

type dashThresholds struct {
	Warn     float64 `json:"warn"`
	Error    float64 `json:"error"`
	Critical float64 `json:"critical"`
}

type dashProcess struct {
	PID            uint32  `json:"pid"`
	Comm           string  `json:"comm"`
	Exe            string  `json:"exe,omitempty"`
	Cgroup         string  `json:"cgroup,omitempty"`
	Open           int     `json:"open"`
	Limit          uint64  `json:"limit"` // 0 unknown or unlimited
	Ratio          float64 `json:"ratio"`
	Threads        int     `json:"threads"`
	Children       int     `json:"children"`
	Growth         float64 `json:"growth_per_second"`
	Resident       uint64  `json:"resident_bytes"`
	Virtual        uint64  `json:"virtual_bytes"`
	MemoryLimit    uint64  `json:"memory_limit_bytes,omitempty"`
	MemoryGrowth   float64 `json:"memory_growth_bytes_per_second"`
	Failures       uint64  `json:"failures"`
	Incident       string  `json:"incident,omitempty"`
	ExhaustSeconds float64 `json:"exhaust_seconds"`
}

type dashSite struct {
	Key         string  `json:"key"`
	Function    string  `json:"function"`
	Location    string  `json:"location"`
	Kind        string  `json:"kind"`
	Outstanding int     `json:"outstanding"`
	Suspects    int     `json:"suspects"`
	Growth      int     `json:"growth"`
	GrowthRate  float64 `json:"growth_per_second"`
	// MappedBytes is what the site has mapped (mmap, brk) in live
	// processes; MappedRate its growth in bytes/s over the window.
	MappedBytes uint64  `json:"mapped_bytes,omitempty"`
	MappedRate  float64 `json:"mapped_growth_bytes_per_second,omitempty"`
	// Settled counts handles closed within the pairing window, settled in
	// the kernel; SettledRate is their rate over the growth window.
	Settled     uint64      `json:"settled_in_kernel,omitempty"`
	SettledRate float64     `json:"settled_per_second,omitempty"`
	Stack       []dashFrame `json:"stack"`
}

type dashFrame struct {
	report.Frame
	Python bool `json:"python,omitempty"`
}

type flameNode struct {
	Name     string       `json:"name"`
	Value    int          `json:"value"`
	Children []*flameNode `json:"children,omitempty"`
	index    map[string]*flameNode
}

type dashHistory struct {
	PID      uint32  `json:"pid"`
	Times    []int64 `json:"times"` // unix ms
	Open     []int   `json:"open"`
	MemTimes []int64 `json:"memory_times"`
	Resident []int   `json:"resident_bytes"`
	Limit    uint64  `json:"limit"`
	MemLimit uint64  `json:"memory_limit_bytes,omitempty"`
}

// pythonFirst orders a stack's frames for a reader: the Python lines, then
// the native frames, each innermost first.
func pythonFirst(stack []report.Frame) []dashFrame {
	out := make([]dashFrame, 0, len(stack))
	for _, f := range stack {
		if f.Module == python.Module {
			out = append(out, dashFrame{Frame: f, Python: true})
		}
	}
	for _, f := range stack {
		if f.Module != python.Module {
			out = append(out, dashFrame{Frame: f})
		}
	}
	return out
}

func frameLabel(f report.Frame) string {
	name := f.Function
	if name == "" {
		name = "0x" + strconv.FormatUint(f.Address, 16)
	}
	if f.File != "" {
		return name + " (" + f.File + ":" + strconv.Itoa(f.Line) + ")"
	}
	return name
}

// buildDashboard encodes the dashboard's view of snap. It runs in the
// agent's loop after an evaluation.
func (a *Agent) buildDashboard(snap *Snapshot, now time.Time) {
	a.mu.Lock()
	cfg := a.cfg
	m := dashModel{Generated: now, Interval: a.interval.Seconds(), GrowthWindow: cfg.Thresholds.GrowthWindow.Seconds(),
		Thresholds: dashThresholds{cfg.Thresholds.FDWarn, cfg.Thresholds.FDError, cfg.Thresholds.FDCritical},
		Untracked:  snap.Untracked, Exited: snap.Exited, Processes: make([]dashProcess, 0, len(snap.Processes))}
	hist := make(map[uint32]*dashHistory, len(snap.Processes))
	for i := range snap.Processes {
		p := &snap.Processes[i]
		dp := dashProcess{PID: p.PID, Comm: p.Comm, Exe: p.Exe, Cgroup: p.Cgroup, Open: p.Usage.Open, Threads: p.Usage.Threads,
			Children: p.Usage.Children, Growth: p.GrowthPerSec, Resident: p.Memory.Resident, Virtual: p.Memory.Virtual,
			MemoryLimit: p.MemoryLimit, MemoryGrowth: p.MemoryGrowth, Incident: p.Incident, ExhaustSeconds: p.ExhaustSeconds}
		if p.Limit < 1<<53 {
			dp.Limit, dp.Ratio = p.Limit, p.UsageRatio()
		}
		for _, n := range p.Failures {
			dp.Failures += n
		}
		m.Processes = append(m.Processes, dp)
		if st := a.procs[p.PID]; st != nil {
			h := &dashHistory{PID: p.PID, Limit: dp.Limit, MemLimit: p.MemoryLimit,
				Times: make([]int64, 0, len(st.open.s)), Open: make([]int, 0, len(st.open.s)),
				MemTimes: make([]int64, 0, len(st.resident.s)), Resident: make([]int, 0, len(st.resident.s))}
			for _, s := range st.open.s {
				h.Times, h.Open = append(h.Times, s.t.UnixMilli()), append(h.Open, s.n)
			}
			for _, s := range st.resident.s {
				h.MemTimes, h.Resident = append(h.MemTimes, s.t.UnixMilli()), append(h.Resident, s.n)
			}
			hist[p.PID] = h
		}
	}
	type flameSite struct {
		n     int
		stack []report.Frame
	}
	var flames []flameSite
	for id, st := range a.sites {
		n := outstandingOf(st)
		if n <= 0 || id == 0 {
			continue
		}
		flames = append(flames, flameSite{n, st.info.Stack})
	}
	sites := make([]dashSite, 0, min(len(snap.Sites), dashSites))
	ranked := slices.Clone(snap.Sites)
	slices.SortStableFunc(ranked, func(x, y SiteStat) int {
		return cmp.Or(cmp.Compare(y.Growth, x.Growth), cmp.Compare(y.Suspects, x.Suspects), cmp.Compare(y.Outstanding, x.Outstanding))
	})
	add := func(s SiteStat) {
		ds := dashSite{Key: s.Key, Function: s.Function(), Location: s.Location(), Kind: s.Kind, Outstanding: s.Outstanding,
			Suspects: s.Suspects, Growth: s.Growth, GrowthRate: s.GrowthPerSec, MappedBytes: s.MappedBytes, MappedRate: s.MappedGrowthPerSec,
			Settled: s.Settled, SettledRate: s.SettledPerSec}
		if st := a.sites[s.ID]; st != nil {
			ds.Stack = pythonFirst(st.info.Stack)
		}
		sites = append(sites, ds)
	}
	// Room is kept for the sites that map most: memory grows at sites that
	// hold few fds or none.
	byMapped := slices.Clone(snap.Sites)
	slices.SortStableFunc(byMapped, func(x, y SiteStat) int {
		return cmp.Or(cmp.Compare(y.MappedGrowthPerSec, x.MappedGrowthPerSec), cmp.Compare(y.MappedBytes, x.MappedBytes))
	})
	// And for the busiest sites of short-lived handles, which hold none
	// for long: a connection made and closed per request instead of pooled.
	bySettled := slices.Clone(snap.Sites)
	slices.SortStableFunc(bySettled, func(x, y SiteStat) int {
		return cmp.Or(cmp.Compare(y.SettledPerSec, x.SettledPerSec), cmp.Compare(y.Settled, x.Settled))
	})
	mappedRoom, settledRoom := dashSites/4, dashSites/8
	listed := func(key string) bool {
		return slices.ContainsFunc(sites, func(d dashSite) bool { return d.Key == key })
	}
	for _, s := range ranked {
		if len(sites) == dashSites-mappedRoom-settledRoom {
			break
		}
		if s.Outstanding == 0 && s.Growth == 0 {
			continue
		}
		add(s)
	}
	for _, s := range byMapped {
		if len(sites) == dashSites-settledRoom || s.MappedBytes == 0 {
			break
		}
		if !listed(s.Key) {
			add(s)
		}
	}
	for _, s := range bySettled {
		if len(sites) == dashSites || s.Settled == 0 {
			break
		}
		if !listed(s.Key) {
			add(s)
		}
	}
	a.mu.Unlock()
	m.Sites = sites

	slices.SortFunc(m.Processes, func(x, y dashProcess) int {
		return cmp.Or(cmp.Compare(y.Ratio, x.Ratio), cmp.Compare(y.Open, x.Open), cmp.Compare(x.PID, y.PID))
	})
	slices.SortFunc(flames, func(x, y flameSite) int { return cmp.Compare(y.n, x.n) })
	root := &flameNode{Name: "all"}
	for i, f := range flames {
		if i == dashFlame {
			break
		}
		root.add(f.stack, f.n)
		m.FlameSites++
	}
	m.Flame = root
	m.Alerts = a.alerts.Firing()
	if a.incidents != nil {
		l := a.incidents.List()
		m.Incidents = l[:min(len(l), dashIncidents)]
	}
	main, err := json.Marshal(m)
	if err != nil {
		a.log.Warn("encoding the dashboard", "err", err)
		return
	}
	a.dash.Store(&dashboard{main: main, history: hist})
}

// add counts n handles made by stack (innermost first) under the node,
// outermost frame at the top as icicle graphs read.
func (r *flameNode) add(stack []report.Frame, n int) {
	r.Value += n
	node := r
	if len(stack) > dashFlameDeep {
		stack = stack[:dashFlameDeep]
	}
	for i := len(stack) - 1; i >= 0; i-- {
		name := frameLabel(stack[i])
		if node.index == nil {
			node.index = make(map[string]*flameNode)
		}
		c := node.index[name]
		if c == nil {
			c = &flameNode{Name: name}
			node.index[name] = c
			node.Children = append(node.Children, c)
		}
		c.Value += n
		node = c
	}
}
