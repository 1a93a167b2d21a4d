package symbolize

import "errors"

// ruleKind says how to recover a register (or the CFA) of the caller's frame.
type ruleKind uint8

const (
	ruleUnspecified ruleKind = iota // nothing said: a callee-saved register keeps its value
	ruleUndefined                   // not recoverable; for the return address: outermost frame
	ruleSame                        // unchanged
	ruleOffset                      // saved at CFA+off
	ruleValOffset                   // the value is CFA+off
	ruleRegister                    // the value is in register reg
	ruleExpr                        // saved at the address expr computes
	ruleValExpr                     // the value is what expr computes
	ruleCFA                         // CFA only: reg + off
	ruleCFAExpr                     // CFA only: expr computes it
)

type rule struct {
	kind ruleKind
	reg  uint64
	off  int64
	expr []byte
}

// row is the part of a CFI table row the unwinder uses: how to find the CFA, the
// caller's %rbp and the return address.
type row struct {
	cfa, rbp, ra rule
	signal       bool // a signal frame: the return address is the interrupted pc itself
}

// maxStates bounds DW_CFA_remember_state nesting; real compilers use one or two.
const maxStates = 16

var (
	errBadCFI  = errors.New("malformed CFI")
	errBadRule = errors.New("unsupported CFI rule")
)

// rowFor computes the row of f at vaddr by running the CIE's initial instructions and
// then the FDE's up to vaddr.
func (t *cfiTable) rowFor(f *fde, vaddr uint64) (row, error) {
	c := &t.cies[f.cie]
	var r row
	r.signal = c.signal
	loc := f.start
	if err := t.run(c, c.initial, &r, nil, &loc, ^uint64(0)); err != nil {
		return row{}, err
	}
	init := r
	loc = f.start
	if err := t.run(c, t.data[f.insn:f.insnEnd], &r, &init, &loc, vaddr); err != nil {
		return row{}, err
	}
	if r.cfa.kind != ruleCFA && r.cfa.kind != ruleCFAExpr {
		return row{}, errBadRule
	}
	if r.cfa.kind == ruleCFA && r.cfa.reg != regRSP && r.cfa.reg != regRBP {
		// E.g. %r10 in a stack-realigning prologue: a register we do not track.
		return row{}, errBadRule
	}
	// Go's .debug_frame never says where %rbp is saved, but every Go function with a
	// frame pushes it just below the return address.
	if t.goFrames && r.rbp.kind == ruleUnspecified && r.cfa.kind == ruleCFA && r.cfa.reg == regRSP && r.cfa.off >= 16 {
		r.rbp = rule{kind: ruleOffset, off: -16}
	}
	return r, nil
}

// run executes CFA instructions, stopping once loc passes pc. init is the row after
// the CIE's initial instructions, for DW_CFA_restore; nil while running those.
func (t *cfiTable) run(c *cie, insns []byte, r *row, init *row, loc *uint64, pc uint64) error {
	var states [maxStates]row
	depth := 0
	rd := reader{b: insns}
	for rd.left() > 0 {
		op := rd.u8()
		var advance uint64
		switch op >> 6 {
		case 1: // DW_CFA_advance_loc
			advance = uint64(op & 0x3f)
		case 2: // DW_CFA_offset
			setReg(r, c, uint64(op&0x3f), rule{kind: ruleOffset, off: int64(rd.uleb()) * c.dataAlign})
		case 3: // DW_CFA_restore
			restoreReg(r, c, init, uint64(op&0x3f))
		default:
			switch op {
			case 0x00: // nop
			case 0x01: // set_loc
				v, ok := readEncoded(&rd, c.fdeEnc, cfiBases{}, 0)
				if !ok || c.fdeEnc&0x70 != 0 {
					return errBadRule // relative set_loc needs bases we do not keep
				}
				if v > pc {
					return nil
				}
				*loc = v
			case 0x02:
				advance = uint64(rd.u8())
			case 0x03:
				advance = uint64(rd.u16())
			case 0x04:
				advance = uint64(rd.u32())
			case 0x05: // offset_extended
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleOffset, off: int64(rd.uleb()) * c.dataAlign})
			case 0x06: // restore_extended
				restoreReg(r, c, init, rd.uleb())
			case 0x07: // undefined
				setReg(r, c, rd.uleb(), rule{kind: ruleUndefined})
			case 0x08: // same_value
				setReg(r, c, rd.uleb(), rule{kind: ruleSame})
			case 0x09: // register
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleRegister, reg: rd.uleb()})
			case 0x0a: // remember_state
				if depth == maxStates {
					return errBadCFI
				}
				states[depth] = *r
				depth++
			case 0x0b: // restore_state
				if depth == 0 {
					return errBadCFI
				}
				depth--
				// The CFA rule is part of the state too (DWARF 5 6.4.2.4).
				*r = states[depth]
			case 0x0c: // def_cfa
				reg := rd.uleb()
				r.cfa = rule{kind: ruleCFA, reg: reg, off: int64(rd.uleb())}
			case 0x0d: // def_cfa_register
				r.cfa.kind = ruleCFA
				r.cfa.reg = rd.uleb()
				r.cfa.expr = nil
			case 0x0e: // def_cfa_offset
				r.cfa.off = int64(rd.uleb())
			case 0x0f: // def_cfa_expression
				r.cfa = rule{kind: ruleCFAExpr, expr: rd.take(int(min(rd.uleb(), uint64(rd.left()+1))))}
			case 0x10: // expression
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleExpr, expr: rd.take(int(min(rd.uleb(), uint64(rd.left()+1))))})
			case 0x11: // offset_extended_sf
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleOffset, off: rd.sleb() * c.dataAlign})
			case 0x12: // def_cfa_sf
				reg := rd.uleb()
				r.cfa = rule{kind: ruleCFA, reg: reg, off: rd.sleb() * c.dataAlign}
			case 0x13: // def_cfa_offset_sf
				r.cfa.off = rd.sleb() * c.dataAlign
			case 0x14: // val_offset
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleValOffset, off: int64(rd.uleb()) * c.dataAlign})
			case 0x15: // val_offset_sf
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleValOffset, off: rd.sleb() * c.dataAlign})
			case 0x16: // val_expression
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleValExpr, expr: rd.take(int(min(rd.uleb(), uint64(rd.left()+1))))})
			case 0x2d: // GNU_window_save (SPARC): no operands
			case 0x2e: // GNU_args_size: only matters to exception handling
				rd.uleb()
			case 0x2f: // GNU_negative_offset_extended
				reg := rd.uleb()
				setReg(r, c, reg, rule{kind: ruleOffset, off: -int64(rd.uleb()) * c.dataAlign})
			default:
				return errBadCFI // an unknown opcode: its operands cannot be skipped
			}
		}
		if rd.bad {
			return errBadCFI
		}
		if advance != 0 {
			next := *loc + advance*c.codeAlign
			if next > pc || next < *loc {
				return nil
			}
			*loc = next
		}
	}
	return nil
}

// setReg records a rule for a register the unwinder tracks and ignores the others.
func setReg(r *row, c *cie, reg uint64, ru rule) {
	switch reg {
	case c.raReg:
		r.ra = ru
	case regRBP:
		r.rbp = ru
	}
}

func restoreReg(r *row, c *cie, init *row, reg uint64) {
	var ru rule
	if init != nil {
		switch reg {
		case c.raReg:
			ru = init.ra
		case regRBP:
			ru = init.rbp
		}
	}
	setReg(r, c, reg, ru)
}
