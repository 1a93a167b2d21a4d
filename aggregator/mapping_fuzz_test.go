package aggregator

import (
	"testing"

	"github.com/leaktrace/leaktrace/event"
)

// page is one page of the fuzz model: the site that mapped it (0: not
// traced) and whether it is reserved (PROT_NONE).
type page struct {
	stack    event.StackID
	reserved bool
}

// FuzzMappingRanges checks the range bookkeeping against a page-by-page
// model: after any sequence of mmap, munmap, mremap and mprotect, every page
// has the site and protection the model says, the ranges are sorted and
// disjoint, and each site's bytes are its accessible pages.
func FuzzMappingRanges(f *testing.F) {
	f.Add([]byte{0, 2, 10, 1, 1, 4, 2, 2, 2, 10, 20, 6, 1})
	f.Add([]byte{0, 0, 8, 2, 0, 8, 8, 1, 2, 0, 8, 30, 12, 0})
	f.Add([]byte{0, 0, 40, 0x81, 3, 4, 8, 2, 3, 6, 2, 0x80})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const pages = 64
		var model [pages]page
		a := New(Config{})
		at := func(p int) uint64 { return base + uint64(p)*pageSize }
		for len(ops) >= 4 {
			op, x, y, z := ops[0]%4, int(ops[1])%pages, int(ops[2])%(pages/2), ops[3]
			ops = ops[4:]
			y = min(y, pages-x)
			e := event.Event{PID: mpid, TID: mpid, Files: mfiles, FD: -1, FD2: -1}
			switch op {
			case 0: // mmap [x, x+y) at site z%3+1, PROT_NONE when z's top bit is set
				s, rsv := event.StackID(z%3+1), z&0x80 != 0
				e.Type, e.Addr, e.Len, e.Stack = event.MapNew, at(x), uint64(y)*pageSize, s
				if rsv {
					e.Flags = event.FlagMapReserved
				}
				for p := x; p < x+y; p++ {
					model[p] = page{s, rsv}
				}
			case 1: // munmap [x, x+y)
				e.Type, e.Addr, e.Len = event.MapFree, at(x), uint64(y)*pageSize
				for p := x; p < x+y; p++ {
					model[p] = page{}
				}
			case 2: // mremap [x, x+y) to z's page, z%8 pages longer or shorter
				if len(ops) < 1 {
					return
				}
				to := int(z) % pages
				ny := min(max(y+int(ops[0]%9)-4, 0), pages-to)
				dontunmap := ops[0]&0x80 != 0
				ops = ops[1:]
				e.Type, e.OldAddr, e.OldLen, e.Addr, e.Len = event.MapMove, at(x), uint64(y)*pageSize, at(to), uint64(ny)*pageSize
				if dontunmap {
					e.Flags = event.FlagMapDontUnmap
				}
				old := append([]page(nil), model[x:x+y]...)
				if !dontunmap {
					for p := x; p < x+y; p++ {
						model[p] = page{}
					}
				}
				for p := to; p < to+ny; p++ {
					model[p] = page{}
				}
				for i := 0; i < ny; i++ {
					switch {
					case i < y && old[i].stack != 0:
						model[to+i] = old[i]
					case i >= y && y > 0 && old[y-1].stack != 0:
						model[to+i] = old[y-1] // growth: the last piece's
					}
				}
			case 3: // mprotect [x, x+y): PROT_NONE when z's top bit is set, else accessible at site z%3+1
				s, rsv := event.StackID(z%3+1), z&0x80 != 0
				e.Type, e.Addr, e.Len = event.MapProt, at(x), uint64(y)*pageSize
				if rsv {
					e.Flags = event.FlagMapReserved
				} else {
					e.Stack = s
				}
				for p := x; p < x+y; p++ {
					switch {
					case model[p].stack == 0:
					case rsv:
						model[p].reserved = true
					case model[p].reserved:
						model[p] = page{s, false}
					}
				}
			}
			a.Apply(&e)

			var got [pages]page
			var prevEnd uint64
			for _, m := range a.Mappings(mpid) {
				if m.Start >= m.End || m.Start < prevEnd || m.Start < base || m.End > at(pages) {
					t.Fatalf("range %#x-%#x after %#x: not sorted, disjoint and inside", m.Start, m.End, prevEnd)
				}
				prevEnd = m.End
				for p := (m.Start - base) / pageSize; p < (m.End-base)/pageSize; p++ {
					got[p] = page{m.Stack, m.Reserved}
				}
			}
			if got != model {
				t.Fatalf("pages %v, want %v", got, model)
			}
			bytes := map[event.StackID]uint64{}
			for _, pg := range model {
				if pg.stack != 0 && !pg.reserved {
					bytes[pg.stack] += pageSize
				}
			}
			live := a.MappedLive()
			for s, n := range bytes {
				if live[s].Bytes != n {
					t.Fatalf("site %d: %d bytes, want %d", s, live[s].Bytes, n)
				}
			}
			for s, m := range live {
				if bytes[s] != m.Bytes || m.Mappings <= 0 {
					t.Fatalf("site %d: %+v, want %d bytes", s, m, bytes[s])
				}
			}
		}
	})
}
