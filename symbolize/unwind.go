package symbolize

import (
	"encoding/binary"
)

// Regs are the user registers the unwinder starts from.
type Regs struct{ IP, SP, BP uint64 }

// stackMem is the copy of user memory the BPF side took, starting at the stack
// pointer. It is the only memory the unwinder may read.
type stackMem struct {
	base uint64
	b    []byte
}

func (m *stackMem) read(addr uint64) (uint64, bool) {
	if addr < m.base || addr-m.base > uint64(len(m.b)) || uint64(len(m.b))-(addr-m.base) < 8 {
		return 0, false
	}
	off := addr - m.base
	return binary.LittleEndian.Uint64(m.b[off : off+8]), true
}

// maxRows bounds the compiled-row cache; past it the cache starts over.
const maxRows = 1 << 16

type rowKey struct {
	mod   *Module
	vaddr uint64
}

// cachedRow is a compiled row, or ok false when the module has no usable CFI there.
type cachedRow struct {
	row row
	ok  bool
}

// Unwinder reconstructs user call stacks. It caches the CFI rows of the pcs it has
// seen, so a hot call site costs a map lookup. Not safe for concurrent use.
type Unwinder struct {
	cache *Cache
	rows  map[rowKey]*cachedRow
	// named: the kernel's name for a file Go knows by another (KernelName).
	named map[fileIdent]fileIdent
	// mods remembers, for one Unwind call, the modules already looked up: a stack
	// mostly alternates between the program and libc.
	mods  [4]moduleMemo
	nmods int
}

type moduleMemo struct {
	path string
	mod  *Module
}

// NewUnwinder returns an unwinder that finds modules through c.
func NewUnwinder(c *Cache) *Unwinder {
	return &Unwinder{cache: c, rows: make(map[rowKey]*cachedRow)}
}

// stepResult is the outcome of unwinding one frame.
type stepResult uint8

const (
	stepOK        stepResult = iota
	stepNoCFI                // no usable rule: use frame pointers
	stepNeedMem              // needs memory outside the stack copy
	stepOutermost            // the CFI says there is no caller
)

// Unwind appends to pcs the absolute program counters of the stack, innermost first:
// regs.IP, then return addresses (not minus 1), at most max in all. stack is a copy of
// user memory starting at regs.SP. kernelFP is the kernel's frame-pointer walk taken
// at the same moment: when the unwind needs memory outside stack, it continues with
// kernelFP after the point where both agree, and stops if they never do. It stops on
// a zero return address, a stack pointer that does not grow, or a pc outside every
// mapping. It never panics, whatever the input.
func (u *Unwinder) Unwind(s *AddressSpace, regs Regs, stack []byte, kernelFP []uint64, max int, pcs []uint64) []uint64 {
	return u.UnwindFrom(s, regs, true, stack, kernelFP, max, pcs, nil)
}

// UnwindFrom is Unwind from a frame that is the syscall's (exact) or a
// caller's, whose regs.IP is a return address. When rules is not nil, it
// appends to it how the kernel may take each step it took without a stack
// copy (see Rule), where the step was simple enough.
func (u *Unwinder) UnwindFrom(s *AddressSpace, regs Regs, exact bool, stack []byte, kernelFP []uint64, max int, pcs []uint64, rules *[]Rule) []uint64 {
	if max <= 0 {
		return pcs
	}
	start := len(pcs)
	u.nmods = 0
	if !exact {
		// The kernel stopped at a return address it had no rule for:
		// where Unwind would not have taken it, neither do we.
		if _, ok := s.Lookup(regs.IP - 1); !ok {
			addRule(rules, Rule{PC: regs.IP, Kind: RuleEnd})
			return pcs
		}
	}
	pcs = append(pcs, regs.IP)
	mem := stackMem{base: regs.SP, b: stack}
	rf := regFile{ip: regs.IP, sp: regs.SP, bp: regs.BP}
	// The first pc is where the thread is; later ones are return addresses, which may
	// point just past a call that never returns: look those up at pc-1.
	for len(pcs)-start < max {
		look := rf.ip
		if !exact {
			look--
		}
		m, ok := s.Lookup(look)
		if !ok {
			break
		}
		next, signal, res, kr := u.step(m, look, &rf, &mem)
		if res == stepNoCFI && len(pcs)-start == 1 {
			// glibc's clone3 ends its FDE just before the syscall: a leaf
			// with the return address still at [sp].
			if leaf, ok := u.leafStep(s, &rf, &mem); ok {
				next, signal, res, kr = leaf, false, stepOK, leafRule
			}
		}
		if res == stepNoCFI {
			next, signal, res = fpStep(&rf, &mem)
			kr = fpRule
		}
		if kr.Kind != 0 && res == stepOK {
			// Not where the step needed memory outside the copy: the kernel
			// would take it, Go goes on with the kernel's frame-pointer walk
			// (and Go's vfork reads below sp), and the two stacks would differ.
			kr.PC = rf.ip
			u.fileRule(&kr, m)
			addRule(rules, kr)
		}
		switch res {
		case stepNeedMem:
			return joinKernel(s, pcs, start, kernelFP, max)
		case stepOutermost:
			last := Rule{PC: rf.ip, Kind: RuleLast}
			u.fileRule(&last, m)
			addRule(rules, last)
			return pcs
		}
		if next.ip == 0 || next.sp <= rf.sp {
			break
		}
		if _, ok := s.Lookup(next.ip - 1); !ok {
			addRule(rules, Rule{PC: next.ip, Kind: RuleEnd})
			break
		}
		if signal {
			// After a signal frame the pc is the interrupted instruction, not a
			// return address; the kernel does not tell the two apart, so it
			// learns nothing past one.
			rules = nil
		}
		exact = signal
		pcs = append(pcs, next.ip)
		rf = next
	}
	return pcs
}

// RuleKind says what a Rule tells the kernel.
type RuleKind uint8

const (
	RuleStep RuleKind = 1 // the caller's frame is found by the rule
	RuleLast RuleKind = 2 // the outermost frame: the stack ends with PC
	RuleEnd  RuleKind = 3 // PC, a return address, is no frame: the stack ends before it
)

// Rule is a step of the unwinder in a form the kernel can take with live
// memory: CFA = (SP, or BP when CFAFromBP) + CFAOff, the return address at
// CFA+RAOff, the caller's BP at CFA+BPOff when BPSaved, else unchanged. PC
// is the frame's pc as it appears in the stack (a return address but the
// first), in the address space of the stack it came from.
type Rule struct {
	PC        uint64
	Kind      RuleKind
	CFAFromBP bool
	BPSaved   bool
	CFAOff    int32
	RAOff     int16
	BPOff     int16
	// InFile: File names the code at PC, whose rule holds in any process
	// that maps that file (a rule that ends the stack where nothing is
	// mapped depends on the process, and has none).
	InFile bool
	File   FileOffset
}

// FileOffset is a place in a file as stat names the file: device (as
// stat gives it), inode, size and modification time, and the offset.
type FileOffset struct {
	Dev, Ino  uint64
	Size      int64
	MtimeNano int64
	Off       uint64
}

// fileRule adds to r the file and offset of r.PC, when m maps r.PC from a
// file the unwinder parsed (the rule came from that file's CFI).
func (u *Unwinder) fileRule(r *Rule, m Mapping) {
	if r.PC < m.Start || r.PC >= m.End {
		return // a return address just past its mapping: the kernel finds the next one
	}
	mod := u.module(m.Path)
	if mod == nil || mod.ident.ino == 0 {
		return
	}
	id := mod.ident
	if n, ok := u.named[id]; ok {
		id = n
	}
	r.InFile = true
	r.File = FileOffset{Dev: id.dev, Ino: id.ino, Size: id.size, MtimeNano: id.mtime, Off: m.Offset + (r.PC - m.Start)}
}

// maxNamed bounds KernelName's table: files seen under two names
// (overlayfs's layers), a few per container image.
const maxNamed = 1 << 14

// KernelName records that the kernel names the file Go opens as path by f
// (its offset aside): rules by file for path's code are then keyed by f.
// They differ where the kernel maps another file than the path opens:
// overlayfs maps the layer's file, while path (a container's file, under
// /proc/PID/root) stats as the overlay's.
func (u *Unwinder) KernelName(path string, f FileOffset) {
	mod := u.module(path)
	if mod == nil || mod.ident.ino == 0 {
		return
	}
	n := fileIdent{dev: f.Dev, ino: f.Ino, size: f.Size, mtime: f.MtimeNano}
	if n == mod.ident {
		delete(u.named, mod.ident)
		return
	}
	if u.named == nil || len(u.named) >= maxNamed {
		u.named = make(map[fileIdent]fileIdent)
	}
	u.named[mod.ident] = n
}

var (
	leafRule = Rule{Kind: RuleStep, CFAOff: 8, RAOff: -8}
	fpRule   = Rule{Kind: RuleStep, CFAFromBP: true, CFAOff: 16, RAOff: -8, BPSaved: true, BPOff: -16}
)

func addRule(rules *[]Rule, r Rule) {
	if rules != nil {
		*rules = append(*rules, r)
	}
}

// ruleOf is r as a Rule, or a zero Rule when the kernel cannot take it:
// a CFA or register given by an expression, a signal frame.
func ruleOf(r *row) Rule {
	if r.signal || r.cfa.kind != ruleCFA || (r.cfa.reg != regRSP && r.cfa.reg != regRBP) || r.cfa.off != int64(int32(r.cfa.off)) {
		return Rule{}
	}
	out := Rule{Kind: RuleStep, CFAFromBP: r.cfa.reg == regRBP, CFAOff: int32(r.cfa.off), RAOff: -8}
	switch r.ra.kind {
	case ruleUnspecified:
	case ruleOffset:
		if r.ra.off != int64(int16(r.ra.off)) {
			return Rule{}
		}
		out.RAOff = int16(r.ra.off)
	default:
		return Rule{}
	}
	switch r.rbp.kind {
	case ruleUnspecified, ruleSame, ruleUndefined:
	case ruleOffset:
		if r.rbp.off != int64(int16(r.rbp.off)) {
			return Rule{}
		}
		out.BPSaved, out.BPOff = true, int16(r.rbp.off)
	default:
		return Rule{}
	}
	return out
}

// step unwinds one frame with the CFI of the module mapped at m. look is the address
// used to find the row (the pc, or pc-1 for return addresses). rule is the step in
// the kernel's form, zero when it has none.
func (u *Unwinder) step(m Mapping, look uint64, rf *regFile, mem *stackMem) (regFile, bool, stepResult, Rule) {
	r := u.rowAt(m, look)
	if r == nil {
		return regFile{}, false, stepNoCFI, Rule{}
	}
	kr := ruleOf(r)
	var cfa uint64
	switch r.cfa.kind {
	case ruleCFA:
		base, _ := rf.get(r.cfa.reg)
		cfa = base + uint64(r.cfa.off)
	case ruleCFAExpr:
		v, res := evalExpr(r.cfa.expr, rf, mem, 0, false)
		if res != exprOK {
			return regFile{}, false, exprStep(res), kr
		}
		cfa = v
	}
	raRule := r.ra
	if raRule.kind == ruleUnspecified {
		raRule = rule{kind: ruleOffset, off: -8} // the x86-64 call pushes it there
	}
	if raRule.kind == ruleUndefined {
		return regFile{}, false, stepOutermost, kr
	}
	ra, res := recoverReg(raRule, cfa, 0, false, rf, mem)
	if res != stepOK {
		return regFile{}, false, res, kr
	}
	bp, res := recoverReg(r.rbp, cfa, rf.bp, true, rf, mem)
	if res != stepOK {
		return regFile{}, false, res, kr
	}
	return regFile{ip: ra, sp: cfa, bp: bp}, r.signal, stepOK, kr
}

// recoverReg applies one register rule. cur is the register's value in the current
// frame, valid when hasCur, for the rules that keep it.
func recoverReg(ru rule, cfa, cur uint64, hasCur bool, rf *regFile, mem *stackMem) (uint64, stepResult) {
	switch ru.kind {
	case ruleUnspecified, ruleSame, ruleUndefined:
		// An undefined %rbp is unknowable; keeping the current value only matters
		// if a later frame falls back to frame pointers.
		if !hasCur {
			return 0, stepNoCFI
		}
		return cur, stepOK
	case ruleOffset:
		v, ok := mem.read(cfa + uint64(ru.off))
		if !ok {
			return 0, stepNeedMem
		}
		return v, stepOK
	case ruleValOffset:
		return cfa + uint64(ru.off), stepOK
	case ruleRegister:
		v, ok := rf.get(ru.reg)
		if !ok {
			return 0, stepNoCFI
		}
		return v, stepOK
	case ruleExpr, ruleValExpr:
		v, res := evalExpr(ru.expr, rf, mem, cfa, true)
		if res != exprOK {
			return 0, exprStep(res)
		}
		if ru.kind == ruleValExpr {
			return v, stepOK
		}
		w, ok := mem.read(v)
		if !ok {
			return 0, stepNeedMem
		}
		return w, stepOK
	}
	return 0, stepNoCFI
}

func exprStep(res exprResult) stepResult {
	if res == exprNeedMemory {
		return stepNeedMem
	}
	return stepNoCFI
}

// leafStep treats the innermost frame as a leaf that pushed nothing: [sp] is
// the return address. It is taken only when that address lands where CFI
// describes the code, so a stale stack word is not mistaken for one.
func (u *Unwinder) leafStep(s *AddressSpace, rf *regFile, mem *stackMem) (regFile, bool) {
	ra, ok := mem.read(rf.sp)
	if !ok || ra == 0 {
		return regFile{}, false
	}
	m, ok := s.Lookup(ra - 1)
	if !ok || u.rowAt(m, ra-1) == nil {
		return regFile{}, false
	}
	return regFile{ip: ra, sp: rf.sp + 8, bp: rf.bp}, true
}

// fpStep unwinds one frame by the frame-pointer convention: [bp] is the caller's bp
// and [bp+8] the return address.
func fpStep(rf *regFile, mem *stackMem) (regFile, bool, stepResult) {
	// A zero bp ends the chain: the kernel starts a process with every
	// register zero, and _start and new threads clear it. The kernel
	// learns the frame as the last (without this a new process's dynamic
	// loader, under ld.so's own _start, which has no CFI, sent a copy per
	// open).
	if rf.bp == 0 || rf.bp > ^uint64(0)-16 {
		return regFile{}, false, stepOutermost
	}
	savedBP, ok1 := mem.read(rf.bp)
	ra, ok2 := mem.read(rf.bp + 8)
	if !ok1 || !ok2 {
		return regFile{}, false, stepNeedMem
	}
	return regFile{ip: ra, sp: rf.bp + 16, bp: savedBP}, false, stepOK
}

// rowAt returns the compiled CFI row for the address look in mapping m, or nil.
func (u *Unwinder) rowAt(m Mapping, look uint64) *row {
	mod := u.module(m.Path)
	if mod == nil {
		return nil
	}
	vaddr, ok := mod.Vaddr(m.Offset + (look - m.Start))
	if !ok {
		return nil
	}
	key := rowKey{mod: mod, vaddr: vaddr}
	cr, ok := u.rows[key]
	if !ok {
		cr = u.compileRow(mod, vaddr)
		if len(u.rows) >= maxRows {
			clear(u.rows) // evicted modules' rows go with the rest
		}
		u.rows[key] = cr
	}
	if !cr.ok {
		return nil
	}
	return &cr.row
}

// compileRow finds and runs the CFI of vaddr, .eh_frame first.
func (u *Unwinder) compileRow(mod *Module, vaddr uint64) *cachedRow {
	cr := &cachedRow{}
	for _, t := range [2]*cfiTable{mod.ehFrame, mod.debugFrame} {
		if t == nil {
			continue
		}
		if f, ok := t.find(vaddr); ok {
			r, err := t.rowFor(f, vaddr)
			cr.row, cr.ok = r, err == nil
			break
		}
	}
	return cr
}

// module returns the module at path, or nil when it cannot be parsed.
func (u *Unwinder) module(path string) *Module {
	for i := range u.nmods {
		if u.mods[i].path == path {
			return u.mods[i].mod
		}
	}
	mod, err := u.cache.cached(path)
	if err != nil {
		mod = nil
	}
	if u.nmods < len(u.mods) {
		u.mods[u.nmods] = moduleMemo{path, mod}
		u.nmods++
	}
	return mod
}

// joinKernel continues an unwind that ran out of stack copy with the kernel's
// frame-pointer walk, after the kernel's entry for the last pc unwound. A pc that
// recursion repeats is matched by its number of occurrences.
func joinKernel(s *AddressSpace, pcs []uint64, start int, kernelFP []uint64, max int) []uint64 {
	own := pcs[start:]
	last := own[len(own)-1]
	want := 0
	for _, pc := range own {
		if pc == last {
			want++
		}
	}
	j, seen := -1, 0
	for i, pc := range kernelFP {
		if pc == last {
			j = i
			if seen++; seen == want {
				break
			}
		}
	}
	if j < 0 {
		return pcs
	}
	for _, pc := range kernelFP[j+1:] {
		if pc == 0 || len(pcs)-start >= max {
			break
		}
		// The kernel's walk goes wrong where code reuses %rbp: stop at the first
		// pc that is not code.
		if _, ok := s.Lookup(pc - 1); !ok {
			break
		}
		pcs = append(pcs, pc)
	}
	return pcs
}
