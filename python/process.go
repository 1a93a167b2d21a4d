package python

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/leaktrace/leaktrace/bpf"
)

// RawFrame is a Python frame as the kernel sent it.
type RawFrame struct {
	Code      uint64 // PyCodeObject *
	PrevInstr uint64 // the instruction in progress (a call, at a syscall)
	FirstLine int32  // co_firstlineno as read in the kernel: checks the cache
	Ident     uint64 // co_filename pointer as read in the kernel: checks it too
	Entry     bool   // first frame of a C-level eval call
}

// Frame is a resolved Python frame.
type Frame struct {
	Function string // co_qualname; "" when the code object could not be read
	File     string
	Line     int // 0 when the line table did not say
	Entry    bool
}

// Resolved reports whether the frame's code object was read.
func (f Frame) Resolved() bool { return f.Function != "" || f.File != "" }

// Kernel is the kernel side's per-process table of interpreters.
type Kernel interface {
	SetPython(pid uint32, p bpf.LeaktraceLtPyProc) error
	ForgetPython(pid uint32) error
}

// Stats count what Resolve did, for the report.
type Stats struct {
	Stacks        uint64 // Python stacks received
	Frames        uint64 // frames in them
	Unresolved    uint64 // frames whose code object could not be read
	NoThreadState uint64 // stacks of threads with no Python thread state
	Truncated     uint64 // stacks deeper than the kernel walks
	Learned       uint64 // code objects named from what the kernel read on first sight
}

// Tracker keeps, per traced process, the interpreter it runs and a cache of
// the code objects seen. It is not safe for concurrent use.
type Tracker struct {
	images      Images
	procs       map[uint32]*process
	kernel      Kernel
	log         *slog.Logger
	Stats       Stats
	Unsupported []Unsupported // interpreters seen whose frames are not walked
	seenUnsup   map[unsupKey]bool
}

// Unsupported is an interpreter a traced process ran whose Python frames
// leaktrace cannot walk: its stacks are native only.
type Unsupported struct {
	PID    uint32
	Path   string
	Name   string // "python3.15", "python3.13t"
	Reason string
}

type unsupKey struct {
	pid  uint32
	path string
}

// maxUnsupported bounds the list kept for the report.
const maxUnsupported = 64

func (t *Tracker) unsupported(pid uint32, path string, ue *UnsupportedError) {
	k := unsupKey{pid, path}
	if t.seenUnsup[k] || len(t.Unsupported) >= maxUnsupported {
		return
	}
	if t.seenUnsup == nil {
		t.seenUnsup = make(map[unsupKey]bool)
	}
	t.seenUnsup[k] = true
	t.Unsupported = append(t.Unsupported, Unsupported{PID: pid, Path: path, Name: ue.Name(), Reason: ue.Reason})
	t.log.Info("python frames not supported", "pid", pid, "path", path, "interpreter", ue.Name(), "reason", ue.Reason)
}

type process struct {
	image *Image
	bias  uint64
	file  *os.File // /proc/PID/mem, opened at the first code object read
	rd    reader
	codes map[codeKey]*Code
	// A forked child holds its parent's code objects at the same addresses
	// and often execs before Go reads them: the parent's memory, and what
	// it has read already, name them too.
	parent    *process
	parentPID uint32
}

// codeKey: a freed code object's address is soon another's, so the cache
// also keys on what the kernel read of its filename and first line.
type codeKey struct {
	addr  uint64
	ident uint64
	first int32
}

// maxCodes bounds each process's code cache; a full cache starts over.
const maxCodes = 8192

// NewTracker returns a tracker that tells kernel about the interpreters it
// finds.
func NewTracker(kernel Kernel, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.Default()
	}
	return &Tracker{procs: make(map[uint32]*process), kernel: kernel, log: log}
}

// Mapped tells the tracker that pid mapped file path at addr from file offset
// off (an exec of the executable, an mmap of a library, a line of /proc maps).
// When the file holds a supported interpreter, pid's Python frames are walked
// from now on.
func (t *Tracker) Mapped(pid uint32, path string, addr, off uint64) {
	if !MayBePython(path) {
		return
	}
	if p := t.procs[pid]; p != nil && p.image.Path == path {
		return
	}
	im, err := t.images.Get(path)
	if err != nil {
		var ue *UnsupportedError
		switch {
		case errors.As(err, &ue):
			t.unsupported(pid, path, ue)
		case !errors.Is(err, ErrNotPython):
			t.log.Debug("inspecting a possible python", "path", path, "err", err)
		}
		return
	}
	bias, ok := im.Bias(addr, off)
	if !ok {
		return
	}
	p := &process{image: im, bias: bias}
	k, err := p.kernelEntry()
	if err == nil {
		err = t.kernel.SetPython(pid, k)
	}
	if err != nil {
		t.log.Warn("python frames unavailable", "pid", pid, "err", err)
		return
	}
	t.drop(pid)
	t.procs[pid] = p
	t.log.Debug("python interpreter", "pid", pid, "path", path, "version", VersionString(im.Version))
}

func (p *process) kernelEntry() (bpf.LeaktraceLtPyProc, error) {
	l := p.image.layout
	k := l.Kernel
	if err := setWindows(&k); err != nil {
		return k, err
	}
	k.Runtime = p.bias + p.image.runtime
	k.Version = p.image.Version
	// What the kernel reads to name a code object on first sight: the same
	// offsets Go reads with.
	k.CodeQualname, k.CodeLinetable = uint16(l.CodeQualname), uint16(l.CodeLinetable)
	k.StrLength, k.StrState, k.StrAsciiData = uint16(l.StrLength), uint16(l.StrState), uint16(l.StrASCIIData)
	k.BytesSize, k.BytesData = uint16(l.VarSize), uint16(l.BytesData)
	return k, nil
}

// Learn keeps a code object's names as the kernel read them when it first
// saw the object: no later read of the process is needed for its frames.
// Without a line table (the kernel could not read it) the names are kept as
// a fallback: the process is read first, when it still can be.
func (t *Tracker) Learn(pid uint32, code, ident uint64, first int32, name, file string, linetable []byte) {
	p := t.procs[pid]
	if p == nil || name == "" || file == "" {
		return
	}
	if p.codes == nil || len(p.codes) >= maxCodes {
		p.codes = make(map[codeKey]*Code)
	}
	c := &Code{Name: name, File: file, FirstLine: int(first), fileAddr: ident, partial: linetable == nil}
	if linetable != nil {
		c.linetable = append([]byte(nil), linetable...)
	}
	p.codes[codeKey{addr: code, ident: ident, first: first}] = c
	t.Stats.Learned++
}

// Fork: the child runs the same interpreter at the same addresses (the
// kernel side copied its entry already).
func (t *Tracker) Fork(parent, child uint32) {
	if p := t.procs[parent]; p != nil {
		t.drop(child)
		t.procs[child] = &process{image: p.image, bias: p.bias, codes: p.codes, parent: p, parentPID: parent}
	}
}

// Exec forgets what pid ran before (the kernel side did too).
func (t *Tracker) Exec(pid uint32) { t.drop(pid) }

// Exit forgets pid. The kernel drops its entry at the process's end
// itself; Go's delete is for an entry Go may have added after that, so only
// for an interpreter it knew (a host of short-lived processes ends hundreds
// a second).
func (t *Tracker) Exit(pid uint32) {
	known := t.procs[pid] != nil
	t.drop(pid)
	if !known {
		return
	}
	if err := t.kernel.ForgetPython(pid); err != nil {
		t.log.Debug("forgetting python", "pid", pid, "err", err)
	}
}

func (t *Tracker) drop(pid uint32) {
	if p := t.procs[pid]; p != nil {
		if p.file != nil {
			p.file.Close()
		}
		delete(t.procs, pid)
	}
}

// Known reports whether pid runs a known interpreter.
func (t *Tracker) Known(pid uint32) bool { return t.procs[pid] != nil }

// Stack status bits, as the kernel sends them.
const (
	StatusNoThreadState = 1 << 0
	StatusTruncated     = 1 << 1
)

// Resolve names the frames of pid, appending to out. It must run while the
// process is alive: code objects are read from its memory (and cached).
func (t *Tracker) Resolve(pid uint32, raw []RawFrame, status uint32, out []Frame) []Frame {
	t.Stats.Stacks++
	if status&StatusNoThreadState != 0 {
		t.Stats.NoThreadState++
	}
	if status&StatusTruncated != 0 {
		t.Stats.Truncated++
	}
	p := t.procs[pid]
	for _, rf := range raw {
		t.Stats.Frames++
		f, err := p.resolve(pid, rf)
		if err != nil {
			t.Stats.Unresolved++
			if t.Stats.Unresolved == 1 {
				t.log.Debug("python frame unresolved", "pid", pid, "err", err)
			}
		}
		out = append(out, f)
	}
	return out
}

var errUnknownProcess = errors.New("no interpreter known for the process")

func (p *process) resolve(pid uint32, rf RawFrame) (Frame, error) {
	f := Frame{Entry: rf.Entry}
	if p == nil {
		return f, errUnknownProcess
	}
	key := codeKey{addr: rf.Code, ident: rf.Ident, first: rf.FirstLine}
	c := p.codes[key]
	if c == nil && p.parent != nil {
		c = p.parent.codes[key]
	}
	if c == nil || c.partial {
		partial := c
		var err error
		c, err = p.readCode(pid, rf)
		if err != nil && p.parent != nil {
			c, err = p.parent.readCode(p.parentPID, rf)
		}
		if err != nil && partial != nil {
			c, err = partial, nil // named, with no line
		}
		if err != nil {
			return f, err
		}
		if p.codes == nil || len(p.codes) >= maxCodes {
			p.codes = make(map[codeKey]*Code)
		}
		p.codes[key] = c
	}
	f.Function, f.File = c.Name, c.File
	f.Line, _ = c.line(rf.Code, rf.PrevInstr, p.image.layout)
	return f, nil
}

// readCode reads the code object of rf from pid's memory.
func (p *process) readCode(pid uint32, rf RawFrame) (*Code, error) {
	if p.rd.mem == nil {
		m, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/mem")
		if err != nil {
			return nil, fmt.Errorf("opening memory: %w", err)
		}
		p.file = m
		p.rd = reader{mem: m, l: p.image.layout, types: types{
			code: p.bias + p.image.codeType, str: p.bias + p.image.strType, bytes: p.bias + p.image.bytesType}}
	}
	c, err := p.rd.code(rf.Code)
	if err != nil {
		return nil, err
	}
	if int32(c.FirstLine) != rf.FirstLine || (rf.Ident != 0 && c.fileAddr != rf.Ident) {
		return nil, fmt.Errorf("code object at %#x changed", rf.Code)
	}
	return c, nil
}

// line is the source line of the instruction at instr in the code object at
// addr.
func (c *Code) line(addr, instr uint64, l *Layout) (int, bool) {
	start := addr + uint64(l.CodeHeader)
	index := -1
	if instr >= start {
		if instr-start > maxLinetable*8 {
			return 0, false
		}
		index = int((instr - start) / 2) // 2-byte code units
	}
	return lineAt(c.linetable, c.FirstLine, index)
}
