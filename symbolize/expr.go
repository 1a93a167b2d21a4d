package symbolize

// exprResult says why an expression could not be evaluated.
type exprResult uint8

const (
	exprOK          exprResult = iota
	exprUnsupported            // an operation or register we do not model: fall back
	exprNeedMemory             // a read outside the stack copy: join the kernel's walk
)

// maxExprSteps bounds evaluation: DW_OP_skip/bra can loop.
const maxExprSteps = 256

// regFile is the part of the machine state the unwinder knows for one frame.
type regFile struct {
	ip, sp, bp uint64
}

func (rf *regFile) get(reg uint64) (uint64, bool) {
	switch reg {
	case regRSP:
		return rf.sp, true
	case regRBP:
		return rf.bp, true
	case regRA:
		return rf.ip, true
	}
	return 0, false
}

// evalExpr runs a DWARF expression as CFI uses it: glibc's PLT entries compute the
// CFA from %rsp and %rip, signal trampolines and stack-realigning prologues load
// registers through DW_OP_deref. push is pushed first when hasPush (the CFA, for
// DW_CFA_expression and DW_CFA_val_expression).
func evalExpr(expr []byte, rf *regFile, mem *stackMem, push uint64, hasPush bool) (uint64, exprResult) {
	var st [64]uint64
	n := 0
	if hasPush {
		st[0] = push
		n = 1
	}
	rd := reader{b: expr}
	for steps := 0; rd.left() > 0; steps++ {
		if steps == maxExprSteps {
			return 0, exprUnsupported
		}
		op := rd.u8()
		need, out := exprArity(op)
		if need < 0 || n < need || n-need+out > len(st) {
			return 0, exprUnsupported
		}
		var v uint64
		switch {
		case op >= 0x30 && op <= 0x4f: // lit0..lit31
			v = uint64(op - 0x30)
		case op >= 0x70 && op <= 0x8f: // breg0..breg31
			base, ok := rf.get(uint64(op - 0x70))
			if !ok {
				return 0, exprUnsupported
			}
			v = base + uint64(rd.sleb())
		default:
			switch op {
			case 0x08: // const1u
				v = uint64(rd.u8())
			case 0x09: // const1s
				v = uint64(int64(int8(rd.u8())))
			case 0x0a:
				v = uint64(rd.u16())
			case 0x0b:
				v = uint64(int64(int16(rd.u16())))
			case 0x0c:
				v = uint64(rd.u32())
			case 0x0d:
				v = uint64(int64(int32(rd.u32())))
			case 0x0e, 0x0f: // const8u, const8s
				v = rd.u64()
			case 0x10: // constu
				v = rd.uleb()
			case 0x11: // consts
				v = uint64(rd.sleb())
			case 0x92: // bregx
				base, ok := rf.get(rd.uleb())
				if !ok {
					return 0, exprUnsupported
				}
				v = base + uint64(rd.sleb())
			case 0x12: // dup
				v = st[n-1]
			case 0x13: // drop
				n--
				continue
			case 0x14: // over
				v = st[n-2]
			case 0x15: // pick
				i := int(rd.u8())
				if i >= n {
					return 0, exprUnsupported
				}
				v = st[n-1-i]
			case 0x16: // swap
				st[n-1], st[n-2] = st[n-2], st[n-1]
				continue
			case 0x17: // rot
				st[n-1], st[n-2], st[n-3] = st[n-2], st[n-3], st[n-1]
				continue
			case 0x06: // deref
				w, ok := mem.read(st[n-1])
				if !ok {
					return 0, exprNeedMemory
				}
				st[n-1] = w
				continue
			case 0x23: // plus_uconst
				st[n-1] += rd.uleb()
				continue
			case 0x1f: // neg
				st[n-1] = -st[n-1]
				continue
			case 0x20: // not
				st[n-1] = ^st[n-1]
				continue
			case 0x19: // abs
				if int64(st[n-1]) < 0 {
					st[n-1] = -st[n-1]
				}
				continue
			case 0x2f, 0x28: // skip, bra
				off := int(int16(rd.u16()))
				if op == 0x28 {
					n--
					if st[n] == 0 {
						continue
					}
				}
				to := rd.off + off
				if to < 0 || to > len(expr) {
					return 0, exprUnsupported
				}
				rd.off = to
				continue
			case 0x96: // nop
				continue
			default:
				a, b := st[n-2], st[n-1]
				n -= 2
				switch op {
				case 0x1a:
					v = a & b
				case 0x1c:
					v = a - b
				case 0x1e:
					v = a * b
				case 0x21:
					v = a | b
				case 0x22:
					v = a + b
				case 0x24:
					v = a << (b & 63)
				case 0x25:
					v = a >> (b & 63)
				case 0x26:
					v = uint64(int64(a) >> (b & 63))
				case 0x27:
					v = a ^ b
				case 0x29:
					v = b2u(a == b)
				case 0x2a:
					v = b2u(int64(a) >= int64(b))
				case 0x2b:
					v = b2u(int64(a) > int64(b))
				case 0x2c:
					v = b2u(int64(a) <= int64(b))
				case 0x2d:
					v = b2u(int64(a) < int64(b))
				case 0x2e:
					v = b2u(a != b)
				default:
					return 0, exprUnsupported
				}
			}
		}
		if rd.bad {
			return 0, exprUnsupported
		}
		st[n] = v
		n++
	}
	if rd.bad || n == 0 {
		return 0, exprUnsupported
	}
	return st[n-1], exprOK
}

// exprArity returns how many stack entries an operation needs and how many it may
// leave in addition, or need -1 for operations we do not support (DW_OP_reg*,
// DW_OP_piece, DW_OP_call*, TLS, entry values…).
func exprArity(op uint8) (need, out int) {
	switch {
	case op >= 0x30 && op <= 0x4f, op >= 0x70 && op <= 0x8f:
		return 0, 1
	}
	switch op {
	case 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x92, 0x15:
		return 0, 1
	case 0x12: // dup
		return 1, 2
	case 0x13, 0x06, 0x23, 0x1f, 0x20, 0x19, 0x28:
		return 1, 1
	case 0x14: // over
		return 2, 3
	case 0x16:
		return 2, 2
	case 0x17:
		return 3, 3
	case 0x2f, 0x96:
		return 0, 0
	case 0x1a, 0x1c, 0x1e, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e:
		return 2, 1
	}
	return -1, 0
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
