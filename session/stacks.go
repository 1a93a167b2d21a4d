package session

import (
	"encoding/binary"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/symbolize"
)

// StackTable interns stacks: each distinct stack is kept once and named by a
// small id. Two processes running the same code at different load addresses
// share a stack, since it is keyed by module and ELF address.
type StackTable struct {
	ids     map[string]event.StackID
	stacks  [][]symbolize.Location
	modules map[string]uint32
	key     []byte
}

// NewStackTable returns an empty table; id 0 is "no stack".
func NewStackTable() *StackTable {
	return &StackTable{ids: make(map[string]event.StackID), stacks: [][]symbolize.Location{nil}, modules: make(map[string]uint32)}
}

// Intern returns the id of locs, adding it if new. locs is copied.
func (t *StackTable) Intern(locs []symbolize.Location) event.StackID {
	id, _ := t.intern(locs, true)
	return id
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
	if id, ok := t.ids[string(k)]; ok {
		return id, true
	}
	if !add {
		return 0, false
	}
	id := event.StackID(len(t.stacks))
	t.stacks = append(t.stacks, append([]symbolize.Location(nil), locs...))
	t.ids[string(k)] = id
	return id, true
}

// Get returns the locations of id (nil for 0 or unknown).
func (t *StackTable) Get(id event.StackID) []symbolize.Location {
	if int(id) >= len(t.stacks) {
		return nil
	}
	return t.stacks[id]
}

// Len is the number of distinct stacks.
func (t *StackTable) Len() int { return len(t.stacks) - 1 }
