package session

import (
	"testing"

	"github.com/leaktrace/leaktrace/symbolize"
)

func TestStackTableLookupNeverAdds(t *testing.T) {
	st := NewStackTable()
	a := []symbolize.Location{{Module: "/bin/a", Vaddr: 0x10}}
	b := []symbolize.Location{{Module: "/bin/a", Vaddr: 0x20}}
	id := st.Intern(a)
	if got, ok := st.Lookup(a); !ok || got != id {
		t.Fatalf("Lookup(a) = %d, %v; want %d, true", got, ok, id)
	}
	if got, ok := st.Lookup(b); ok || got != 0 {
		t.Fatalf("Lookup(b) = %d, %v; want 0, false", got, ok)
	}
	if st.Len() != 1 {
		t.Fatalf("Len = %d after a lookup miss, want 1", st.Len())
	}
}
