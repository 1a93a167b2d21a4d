//go:build linux

package session

import (
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/symbolize"
)

// StackTable interns stacks: each distinct stack is kept once and named by a
// small id. Two processes running the same code at different load addresses
// share a stack, since it is keyed by module and ELF address.
//
// Ids are never reused: an evicted stack that comes back gets a new id, so an
// id held anywhere (a handle, a cached site, a metric's state) can go stale
// but never names another stack.
type StackTable struct {
	ids     map[string]*stackEntry
	byID    map[event.StackID]*stackEntry
	next    event.StackID
	max     int // 0: unbounded
	modules map[string]uint32
	key     []byte
}

type stackEntry struct {
	id   event.StackID
	key  string
	locs []symbolize.Location
	// used is set by every Intern or Lookup that finds it and cleared by
	// Evict, which keeps the hot path to a store.
	used bool
	// idleSince is the Evict pass since which the stack was neither used
	// nor referred to.
	idleSince time.Time
}

// NewStackTable returns an empty table of at most max stacks (0: no bound);
// id 0 is "no stack".
func NewStackTable(max int) *StackTable {
	return &StackTable{ids: make(map[string]*stackEntry), byID: make(map[event.StackID]*stackEntry),
		next: 1, max: max, modules: make(map[string]uint32)}
}

// Intern returns the id of locs, adding it if new and there is room; false
// when it was new and the table is full. locs is copied.
func (t *StackTable) Intern(locs []symbolize.Location) (event.StackID, bool) {
	return t.intern(locs, true)
}

// Lookup returns the id of locs if it is known, and never adds it.
func (t *StackTable) Lookup(locs []symbolize.Location) (event.StackID, bool) {
	return t.intern(locs, false)
}

func (t *StackTable) intern(locs []symbolize.Location, add bool) (event.StackID, bool) {
	if len(locs) == 0 {
		return 0, true
	}
	k := t.key[:0]
	for _, l := range locs {
		m, ok := t.modules[l.Module]
		if !ok {
			m = uint32(len(t.modules) + 1)
			t.modules[l.Module] = m
		}
		k = binary.LittleEndian.AppendUint32(k, m)
		k = binary.LittleEndian.AppendUint64(k, l.Vaddr)
	}
	t.key = k
	if e, ok := t.ids[string(k)]; ok {
		e.used = true
		return e.id, true
	}
	// Past the last id there is none left that was never used: refuse
	// rather than reuse one.
	if !add || (t.max > 0 && len(t.byID) >= t.max) || t.next == math.MaxUint32 {
		return 0, false
	}
	e := &stackEntry{id: t.next, key: string(k), locs: append([]symbolize.Location(nil), locs...), used: true}
	t.next++
	t.ids[e.key] = e
	t.byID[e.id] = e
	return e.id, true
}

// Get returns the locations of id (nil for 0, unknown or evicted).
func (t *StackTable) Get(id event.StackID) []symbolize.Location {
	if e := t.byID[id]; e != nil {
		return e.locs
	}
	return nil
}

// Len is the number of distinct stacks kept.
func (t *StackTable) Len() int { return len(t.byID) }

// Evict forgets every stack that inUse says nothing refers to and that was
// neither used nor referred to at any pass in the last idle, and returns
// their ids. Call it at a steady pace: idleness is only measured at passes.
func (t *StackTable) Evict(now time.Time, idle time.Duration, inUse func(event.StackID) bool) []event.StackID {
	var gone []event.StackID
	for id, e := range t.byID {
		if e.used || inUse(id) {
			// A use since the last pass happened before now: idle from now
			// on at the earliest, never longer than it really was.
			e.used = false
			e.idleSince = now
			continue
		}
		if now.Sub(e.idleSince) >= idle {
			delete(t.byID, id)
			delete(t.ids, e.key)
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	return gone
}
