// Package alert keeps the set of firing alerts, turns each evaluation into
// transitions (fired, resolved), and delivers them to sinks: a structured
// log, a webhook (in Alertmanager's webhook format), Alertmanager's v2 API.
// Delivery never blocks evaluation: each sink has a bounded queue, and what
// does not fit is counted.
package alert

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Levels, lowest first.
const (
	LevelWarning  = "warning"
	LevelError    = "error"
	LevelCritical = "critical"
)

// Levels lists every level, lowest first.
var Levels = []string{LevelWarning, LevelError, LevelCritical}

// Alert is one condition on one subject (a process, a site).
type Alert struct {
	Name        string            `json:"name"`
	Level       string            `json:"level"`
	Labels      map[string]string `json:"labels"`      // identify the subject: pid, comm, site…
	Annotations map[string]string `json:"annotations"` // summary, description, top sites
	StartsAt    time.Time         `json:"starts_at"`
	EndsAt      time.Time         `json:"ends_at,omitzero"` // set when resolved
	Status      string            `json:"status"`           // "firing" or "resolved"
}

// Key identifies an alert across evaluations: its name and labels (not its
// level, so that a level change is the same alert, updated).
func (a *Alert) Key() string {
	var b strings.Builder
	b.WriteString(a.Name)
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(a.Labels[k])
	}
	return b.String()
}

// Manager holds the alerts firing now.
type Manager struct {
	mu     sync.Mutex
	firing map[string]*Alert
	sinks  []*Queue
	labels map[string]string // added to every alert: the host's identity
}

// SetLabels sets labels added to every alert that does not set them itself:
// instance and the configured external labels, so that the same pid and comm
// on two hosts are two alerts. Alerts firing under other labels resolve at
// the next evaluation.
func (m *Manager) SetLabels(labels map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.labels = maps.Clone(labels)
}

// NewManager returns a manager that delivers transitions to sinks.
func NewManager(sinks ...*Queue) *Manager {
	return &Manager{firing: make(map[string]*Alert), sinks: sinks}
}

// SetSinks replaces the sinks (a config reload); the old queues are not closed.
func (m *Manager) SetSinks(sinks ...*Queue) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sinks = sinks
}

// Sinks returns the current sinks.
func (m *Manager) Sinks() []*Queue {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sinks)
}

// Evaluate takes every alert whose condition holds now: new ones fire,
// known ones whose level changed resolve at the old level and fire at the
// new one, and firing ones absent from active resolve. Sinks that want the
// full firing set on every evaluation (Alertmanager) get it too. It returns
// the transitions.
//
// A level is part of an alert's identity downstream (Alertmanager keys
// alerts by all their labels, severity included): without the old level's
// resolution, warning, error and critical would all stay firing there.
func (m *Manager) Evaluate(active []Alert, now time.Time) []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	var changed []Alert
	seen := make(map[string]bool, len(active))
	for i := range active {
		a := active[i]
		if len(m.labels) > 0 {
			l := maps.Clone(m.labels)
			maps.Copy(l, a.Labels)
			a.Labels = l
		}
		k := a.Key()
		seen[k] = true
		old := m.firing[k]
		if old != nil && old.Level == a.Level {
			old.Annotations = a.Annotations // keep the description current
			continue
		}
		if old != nil {
			was := *old
			was.Status = "resolved"
			was.EndsAt = now
			changed = append(changed, was)
		}
		a.Status = "firing"
		a.EndsAt = time.Time{}
		if old != nil || a.StartsAt.IsZero() {
			a.StartsAt = now // this level began now
		}
		m.firing[k] = &a
		changed = append(changed, a)
	}
	for _, k := range slices.Sorted(maps.Keys(m.firing)) {
		if seen[k] {
			continue
		}
		a := *m.firing[k]
		delete(m.firing, k)
		a.Status = "resolved"
		a.EndsAt = now
		changed = append(changed, a)
	}
	for _, q := range m.sinks {
		if q.sink.Mode() == SendAll {
			q.Offer(append(m.firingLocked(), resolvedOf(changed)...))
		} else if len(changed) > 0 {
			q.Offer(changed)
		}
	}
	return changed
}

// Firing returns the alerts firing now, in key order.
func (m *Manager) Firing() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.firingLocked()
}

func (m *Manager) firingLocked() []Alert {
	out := make([]Alert, 0, len(m.firing))
	for _, k := range slices.Sorted(maps.Keys(m.firing)) {
		out = append(out, *m.firing[k])
	}
	return out
}

func resolvedOf(as []Alert) []Alert {
	var out []Alert
	for _, a := range as {
		if a.Status == "resolved" {
			out = append(out, a)
		}
	}
	return out
}

// FiringByLevel counts firing alerts per level.
func (m *Manager) FiringByLevel() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(Levels))
	for _, l := range Levels {
		out[l] = 0
	}
	for _, a := range m.firing {
		out[a.Level]++
	}
	return out
}
