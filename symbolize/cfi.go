package symbolize

import (
	"errors"
	"fmt"
	"sort"
)

// DWARF register numbers of x86-64 that the unwinder tracks.
const (
	regRBP = 6
	regRSP = 7
	regRA  = 16
)

// cfiBases are the addresses pointer encodings can be relative to.
type cfiBases struct {
	section uint64 // address of the section itself (pcrel)
	text    uint64 // .text (textrel)
	data    uint64 // .got (datarel, as x86-64 defines it)
}

// cie is a Common Information Entry: what its FDEs share.
type cie struct {
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	fdeEnc    uint8
	augData   bool // 'z': FDEs carry an augmentation data length
	signal    bool // 'S': frames of this CIE are signal frames
	initial   []byte
}

// fde is a Frame Description Entry: the CFI program of one address range.
type fde struct {
	start, end    uint64 // [start, end) ELF virtual addresses
	cie           int32  // index into cfiTable.cies
	insn, insnEnd uint32 // the instructions, as offsets into cfiTable.data
}

// cfiTable is a parsed .eh_frame or .debug_frame with its FDEs sorted for lookup.
type cfiTable struct {
	data []byte
	cies []cie
	fdes []fde
	// goFrames marks Go's .debug_frame, which does not describe where %rbp is saved.
	goFrames bool
}

// parseCFI indexes a .eh_frame (ehFrame) or .debug_frame section. Entries it cannot
// parse are skipped, as are their FDEs: the addresses they cover fall back to frame
// pointers. Only a section whose framing itself is broken stops the walk early.
func parseCFI(data []byte, ehFrame bool, b cfiBases) (*cfiTable, error) {
	t := &cfiTable{data: data}
	if uint64(len(data)) >= 1<<32 {
		return nil, errors.New("CFI section too large")
	}
	cieAt := make(map[int]int32) // entry offset -> index in t.cies, -1 when unusable
	var firstErr error
	off := 0
	for off+4 <= len(data) {
		r := reader{b: data, off: off}
		length := uint64(r.u32())
		is64 := false
		if length == 0xffffffff {
			length = r.u64()
			is64 = true
		}
		if length == 0 {
			if ehFrame {
				break // the terminator
			}
			off = r.off
			continue
		}
		body := r.off
		if r.bad || length > uint64(len(data)-body) {
			firstErr = fmt.Errorf("CFI entry at %#x overruns the section", off)
			break
		}
		end := body + int(length)
		next := off
		off = end
		r.b = data[:end] // nothing in this entry may read past its end
		var id uint64
		if is64 {
			id = r.u64()
		} else {
			id = uint64(r.u32())
		}
		if isCIE(id, is64, ehFrame) {
			if _, seen := cieAt[next]; !seen {
				cieAt[next] = t.addCIE(data[:end], r.off, ehFrame)
			}
			continue
		}
		// The CIE pointer is relative to its own field in .eh_frame and a section
		// offset in .debug_frame.
		var cieOff int
		if ehFrame {
			if id > uint64(body) {
				continue
			}
			cieOff = body - int(id)
		} else {
			if id >= uint64(len(data)) {
				continue
			}
			cieOff = int(id)
		}
		ci, seen := cieAt[cieOff]
		if !seen {
			ci = t.cieAtOffset(cieOff, ehFrame)
			cieAt[cieOff] = ci
		}
		if ci < 0 {
			continue
		}
		c := &t.cies[ci]
		fieldAddr := b.section + uint64(r.off)
		start, ok := readEncoded(&r, c.fdeEnc, b, fieldAddr)
		if !ok {
			continue
		}
		size, ok := readEncoded(&r, c.fdeEnc&0x0f, b, 0)
		if !ok {
			continue
		}
		if c.augData {
			n := r.uleb()
			r.take(int(min(n, uint64(r.left()+1))))
		}
		if r.bad || size == 0 || start == 0 || start+size < start {
			// start 0: a function the linker discarded.
			continue
		}
		t.fdes = append(t.fdes, fde{start: start, end: start + size, cie: ci, insn: uint32(r.off), insnEnd: uint32(end)})
	}
	sort.Slice(t.fdes, func(i, j int) bool { return t.fdes[i].start < t.fdes[j].start })
	return t, firstErr
}

func isCIE(id uint64, is64, ehFrame bool) bool {
	if ehFrame {
		return id == 0
	}
	if is64 {
		return id == 0xffffffffffffffff
	}
	return id == 0xffffffff
}

// cieAtOffset parses the CIE at a section offset an FDE pointed to, for .debug_frame
// sections where a CIE may follow its FDEs.
func (t *cfiTable) cieAtOffset(off int, ehFrame bool) int32 {
	if off < 0 || off+4 > len(t.data) {
		return -1
	}
	r := reader{b: t.data, off: off}
	length := uint64(r.u32())
	is64 := false
	if length == 0xffffffff {
		length = r.u64()
		is64 = true
	}
	if r.bad || length == 0 || length > uint64(len(t.data)-r.off) {
		return -1
	}
	end := r.off + int(length)
	r.b = t.data[:end]
	var id uint64
	if is64 {
		id = r.u64()
	} else {
		id = uint64(r.u32())
	}
	if !isCIE(id, is64, ehFrame) {
		return -1
	}
	return t.addCIE(t.data[:end], r.off, ehFrame)
}

// addCIE parses the CIE body starting at off (after its id) in b, which ends where
// the entry ends, and returns its index or -1 when it cannot be used.
func (t *cfiTable) addCIE(b []byte, off int, ehFrame bool) int32 {
	r := reader{b: b, off: off}
	version := r.u8()
	aug := r.cstring()
	c := cie{fdeEnc: encAbsptr}
	if version >= 4 {
		addrSize := r.u8()
		r.u8() // segment selector size
		if addrSize != 0 && addrSize != 8 {
			return -1
		}
	}
	c.codeAlign = r.uleb()
	c.dataAlign = r.sleb()
	if version == 1 {
		c.raReg = uint64(r.u8())
	} else {
		c.raReg = r.uleb()
	}
	if aug != "" {
		if aug[0] != 'z' {
			return -1 // e.g. the ancient "eh": its layout is unknown to us
		}
		n := r.uleb()
		if n > uint64(r.left()) {
			return -1
		}
		augEnd := r.off + int(n)
		ar := reader{b: b[:augEnd], off: r.off}
		c.augData = true
	loop:
		for _, ch := range aug[1:] {
			switch ch {
			case 'R':
				c.fdeEnc = ar.u8()
			case 'L':
				ar.u8()
			case 'P':
				// The personality routine is not needed; read it only to skip it.
				readEncoded(&ar, ar.u8(), cfiBases{}, 0)
			case 'S':
				c.signal = true
			case 'B', 'G':
			default:
				break loop // the length lets us skip what we do not know
			}
		}
		if ar.bad {
			return -1
		}
		r.off = augEnd
	}
	if r.bad || c.codeAlign == 0 {
		return -1
	}
	c.initial = b[r.off:]
	t.cies = append(t.cies, c)
	return int32(len(t.cies) - 1)
}

// Pointer encodings (DW_EH_PE_*).
const (
	encAbsptr  = 0x00
	encULEB    = 0x01
	encUdata2  = 0x02
	encUdata4  = 0x03
	encUdata8  = 0x04
	encSigned  = 0x08
	encSLEB    = 0x09
	encSdata2  = 0x0a
	encSdata4  = 0x0b
	encSdata8  = 0x0c
	encPCRel   = 0x10
	encTextRel = 0x20
	encDataRel = 0x30
	encOmit    = 0xff
)

// readEncoded reads a pointer in encoding enc. fieldAddr is the address of the field
// itself, for pc-relative pointers. The indirect flag (0x80) is ignored: the pointers
// we use (FDE ranges) are never indirect.
func readEncoded(r *reader, enc uint8, b cfiBases, fieldAddr uint64) (uint64, bool) {
	if enc == encOmit {
		return 0, true
	}
	var v uint64
	switch enc & 0x0f {
	case encAbsptr, encSigned:
		v = r.u64()
	case encULEB:
		v = r.uleb()
	case encUdata2:
		v = uint64(r.u16())
	case encUdata4:
		v = uint64(r.u32())
	case encUdata8, encSdata8:
		v = r.u64()
	case encSLEB:
		v = uint64(r.sleb())
	case encSdata2:
		v = uint64(int64(int16(r.u16())))
	case encSdata4:
		v = uint64(int64(int32(r.u32())))
	default:
		return 0, false
	}
	switch enc & 0x70 {
	case 0:
	case encPCRel:
		v += fieldAddr
	case encTextRel:
		v += b.text
	case encDataRel:
		v += b.data
	default:
		return 0, false // funcrel and aligned never describe FDE ranges
	}
	return v, !r.bad
}

// find returns the FDE covering vaddr.
func (t *cfiTable) find(vaddr uint64) (*fde, bool) {
	i := sort.Search(len(t.fdes), func(i int) bool { return t.fdes[i].start > vaddr })
	// FDEs may nest or overlap in odd binaries: look back a little for a cover.
	for k := i - 1; k >= 0 && k >= i-4; k-- {
		if f := &t.fdes[k]; vaddr < f.end {
			return f, true
		}
	}
	return nil, false
}
