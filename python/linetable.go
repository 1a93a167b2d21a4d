package python

// CPython 3.11's location table (co_linetable, Objects/locations.md): a
// sequence of entries, each covering 1..8 code units. An entry's first byte is
// 1 (bit 7), a 4-bit code (bits 3..6) and length-1 (bits 0..2); the code says
// how the line moves and which column bytes follow.
const (
	locNone     = 15 // no location: line unchanged, no column bytes
	locLong     = 14 // signed line delta, end line delta, column, end column (varints)
	locNoColumn = 13 // signed line delta only
	locOneLine0 = 10 // 10..12: line delta 0..2, then column and end column bytes
)

// lineAt returns the source line of the code unit at index in a code object
// whose first line is firstLine. An index before the first instruction (a
// frame that has not started) is the first line. ok is false when the table
// is malformed or does not reach index.
func lineAt(table []byte, firstLine, index int) (line int, ok bool) {
	if index < 0 {
		return firstLine, true
	}
	line = firstLine
	known := firstLine // the line of the last entry that had one
	unit := 0
	for i := 0; i < len(table); {
		b := table[i]
		if b&0x80 == 0 {
			return 0, false
		}
		code := int(b>>3) & 15
		length := int(b&7) + 1
		i++
		delta := 0
		switch {
		case code == locNone:
		case code == locLong:
			var n int
			delta, n = svarint(table[i:])
			if n == 0 {
				return 0, false
			}
			i += n
			for range 3 { // end line delta, column, end column
				_, n = varint(table[i:])
				if n == 0 {
					return 0, false
				}
				i += n
			}
		case code == locNoColumn:
			var n int
			delta, n = svarint(table[i:])
			if n == 0 {
				return 0, false
			}
			i += n
		case code >= locOneLine0:
			delta = code - locOneLine0
			i += 2
		default: // short form: line unchanged, one column byte
			i++
		}
		if i > len(table) {
			return 0, false
		}
		line += delta
		if code != locNone {
			known = line
		}
		if index < unit+length {
			return known, true
		}
		unit += length
	}
	return 0, false
}

// varint reads CPython's 6-bit-per-byte unsigned varint (bit 6 continues). It
// returns the bytes used, 0 when the input ends early or overflows.
func varint(b []byte) (int, int) {
	v, shift := 0, 0
	for i, c := range b {
		if shift > 30 {
			return 0, 0
		}
		v |= int(c&63) << shift
		shift += 6
		if c&64 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// svarint is a varint whose low bit is the sign.
func svarint(b []byte) (int, int) {
	v, n := varint(b)
	if v&1 != 0 {
		return -(v >> 1), n
	}
	return v >> 1, n
}
