package symbolize

import (
	"debug/dwarf"
	"sort"

	"github.com/leaktrace/leaktrace/report"
)

// dwarfLines answers file:line and inlining questions from a module's DWARF. Units
// are indexed the first time an address in them is asked about.
type dwarfLines struct {
	d     *dwarf.Data
	r     *dwarf.Reader // finds the unit of a pc
	nr    *dwarf.Reader // follows name references
	units map[dwarf.Offset]*unitInfo
}

type unitInfo struct {
	files []*dwarf.LineFile // the line table's file list, for DW_AT_call_file
	names []string          // file names of rows
	rows  []lineRow         // sorted by addr
	subs  []subRange        // sorted by low
}

// lineRow is one row of a line table. Rows are sorted by address across sequences:
// a unit's line table may hold sequences out of address order (GCC puts main in
// .text.startup, after .text), which a forward-only scan would miss.
type lineRow struct {
	addr uint64
	line int32
	file int32 // index into unitInfo.names
	end  bool  // end of a sequence: addresses from here are not covered
}

// subRange is one address range of a DW_TAG_subprogram.
type subRange struct {
	low, high uint64
	off       dwarf.Offset
}

// inlineLevel is one function in the chain from a subprogram to the code inlined
// deepest at a pc, with where it was called from in the level above.
type inlineLevel struct {
	name     string
	callFile string
	callLine int
}

func newDwarfLines(d *dwarf.Data) *dwarfLines {
	return &dwarfLines{d: d, r: d.Reader(), nr: d.Reader(), units: make(map[dwarf.Offset]*unitInfo)}
}

// frames returns the frames of pc, innermost first, or nil when no unit covers it.
// sym is the ELF symbol name, preferred for the outermost function because it is
// the name a user recognizes (and, for C++, the only qualified one).
func (dl *dwarfLines) frames(pc uint64, sym string) []report.Frame {
	cu, err := dl.r.SeekPC(pc)
	if err != nil {
		return nil
	}
	u := dl.unit(cu)
	file, line := u.line(pc)
	chain := dl.inlineChain(u, pc)
	if len(chain) == 0 {
		return []report.Frame{{Function: sym, File: file, Line: line}}
	}
	if sym != "" {
		chain[0].name = sym
	}
	out := make([]report.Frame, len(chain))
	for k := range out {
		lvl := len(chain) - 1 - k
		out[k].Function = chain[lvl].name
		if k == 0 {
			out[k].File, out[k].Line = file, line
		} else {
			out[k].File, out[k].Line = chain[lvl+1].callFile, chain[lvl+1].callLine
		}
	}
	return out
}

// unit indexes a compilation unit's line table and subprograms.
func (dl *dwarfLines) unit(cu *dwarf.Entry) *unitInfo {
	if u, ok := dl.units[cu.Offset]; ok {
		return u
	}
	u := &unitInfo{}
	dl.units[cu.Offset] = u
	if lr, err := dl.d.LineReader(cu); err == nil && lr != nil {
		u.readLines(lr)
	}
	if !cu.Children {
		return u
	}
	r := dl.d.Reader()
	r.Seek(cu.Offset)
	if _, err := r.Next(); err != nil {
		return u
	}
	// Subprograms sit directly in the unit, or inside namespaces and classes.
	for depth := 1; depth > 0; {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		switch {
		case e.Tag == 0:
			depth--
		case e.Tag == dwarf.TagSubprogram:
			if rs, err := dl.d.Ranges(e); err == nil {
				for _, rg := range rs {
					if rg[0] < rg[1] {
						u.subs = append(u.subs, subRange{rg[0], rg[1], e.Offset})
					}
				}
			}
			r.SkipChildren()
		case e.Children:
			depth++
		}
	}
	sort.Slice(u.subs, func(i, j int) bool { return u.subs[i].low < u.subs[j].low })
	return u
}

// inlineChain returns the subprogram containing pc followed by the inlined
// subroutines nested at pc, outermost first.
func (dl *dwarfLines) inlineChain(u *unitInfo, pc uint64) []inlineLevel {
	i := sort.Search(len(u.subs), func(i int) bool { return u.subs[i].low > pc }) - 1
	var sub *subRange
	for k := i; k >= 0 && k >= i-8; k-- {
		if pc < u.subs[k].high {
			sub = &u.subs[k]
			break
		}
	}
	if sub == nil {
		return nil
	}
	r := dl.d.Reader()
	r.Seek(sub.off)
	e, err := r.Next()
	if err != nil || e == nil {
		return nil
	}
	chain := []inlineLevel{{name: dl.name(e)}}
	if !e.Children {
		return chain
	}
	for depth := 1; depth > 0 && len(chain) < 64; {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		switch e.Tag {
		case 0:
			depth--
		case dwarf.TagInlinedSubroutine, dwarf.TagLexDwarfBlock:
			if !dl.covers(e, pc) {
				r.SkipChildren()
				continue
			}
			if e.Tag == dwarf.TagInlinedSubroutine {
				lvl := inlineLevel{name: dl.name(e)}
				if idx, ok := e.Val(dwarf.AttrCallFile).(int64); ok && idx >= 0 && idx < int64(len(u.files)) && u.files[idx] != nil {
					lvl.callFile = u.files[idx].Name
				}
				if ln, ok := e.Val(dwarf.AttrCallLine).(int64); ok {
					lvl.callLine = int(ln)
				}
				chain = append(chain, lvl)
			}
			if e.Children {
				depth++
			}
		default:
			r.SkipChildren()
		}
	}
	return chain
}

// covers tells whether an entry's ranges contain pc; a lexical block without ranges
// covers whatever its parent does.
func (dl *dwarfLines) covers(e *dwarf.Entry, pc uint64) bool {
	rs, err := dl.d.Ranges(e)
	if err != nil {
		return false
	}
	if len(rs) == 0 {
		return e.Tag == dwarf.TagLexDwarfBlock
	}
	for _, rg := range rs {
		if rg[0] <= pc && pc < rg[1] {
			return true
		}
	}
	return false
}

// name returns an entry's name, following abstract origins (inlined and out-of-line
// copies) and specifications (C++ member definitions).
func (dl *dwarfLines) name(e *dwarf.Entry) string {
	for hop := 0; hop < 4 && e != nil; hop++ {
		if n, ok := e.Val(dwarf.AttrName).(string); ok {
			return n
		}
		ref, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
		if !ok {
			if ref, ok = e.Val(dwarf.AttrSpecification).(dwarf.Offset); !ok {
				return ""
			}
		}
		dl.nr.Seek(ref)
		next, err := dl.nr.Next()
		if err != nil {
			return ""
		}
		e = next
	}
	return ""
}

// readLines loads a unit's whole line table, sorted for binary search.
func (u *unitInfo) readLines(lr *dwarf.LineReader) {
	u.files = lr.Files()
	index := make(map[*dwarf.LineFile]int32)
	var e dwarf.LineEntry
	for len(u.rows) < 1<<24 {
		if err := lr.Next(&e); err != nil {
			break
		}
		fi := int32(-1)
		if e.File != nil {
			var ok bool
			if fi, ok = index[e.File]; !ok {
				fi = int32(len(u.names))
				index[e.File] = fi
				u.names = append(u.names, e.File.Name)
			}
		}
		u.rows = append(u.rows, lineRow{addr: e.Address, line: int32(e.Line), file: fi, end: e.EndSequence})
	}
	if files := lr.Files(); len(files) > len(u.files) {
		u.files = files // DWARF 4 may define files as the table goes
	}
	// Stable, with a sequence's end before another sequence's start at the same
	// address: rows of one address keep their order, the last one wins.
	sort.SliceStable(u.rows, func(i, j int) bool {
		a, b := u.rows[i], u.rows[j]
		if a.addr != b.addr {
			return a.addr < b.addr
		}
		return a.end && !b.end
	})
}

// line returns the file and line of pc, or "", 0.
func (u *unitInfo) line(pc uint64) (string, int) {
	i := sort.Search(len(u.rows), func(i int) bool { return u.rows[i].addr > pc }) - 1
	if i < 0 || u.rows[i].end || u.rows[i].file < 0 {
		return "", 0
	}
	return u.names[u.rows[i].file], int(u.rows[i].line)
}
