//go:build linux

package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/symbolize"
)

// Stack is a user stack as the kernel captured it. The kernel unwinds what
// it can with the rules Go gave it (see Tracer.LearnRules): a stack it
// unwound whole comes as a site, with its pcs the first time (New) and
// without after that (Site known). Else Known holds the frames the kernel
// unwound, and Go unwinds the rest from the registers of the frame where the
// kernel stopped, with its copy of the stack there. Its slices alias the
// decoder's buffer: valid until the next Decode.
type Stack struct {
	Present    bool
	IP, SP, BP uint64 // registers of the frame Go unwinds from
	Img        uint64 // the process image the pcs are in (a forked child shares its parent's)
	Site       uint64 // hash of the pcs, when the kernel unwound them all
	SiteKnown  bool   // ... and Go has them from an earlier record
	New        bool   // Known is the whole stack of Site, sent once
	// Shared: Site is named by file offsets, the same in every process
	// that runs that code (Img is 0, the shared sites' table).
	Shared   bool
	Known    []uint64 // pcs the kernel unwound, innermost first, before IP
	KernelFP []uint64 // the kernel's frame-pointer walk from IP
	Bytes    []byte   // copy of user memory from SP
}

// Mapping is an executable file mapping seen at mmap or exec.
type Mapping struct {
	Addr, Len, Offset uint64
	Path              string
}

// Decoded is one record in typed form.
type Decoded struct {
	Event event.Event
	Stack Stack // zero when the record carries none
	// Map is set for Mmap events.
	Map Mapping
	// AtEntry and AtBase are set for Exec events: where the executable's entry
	// point and the interpreter were loaded.
	AtEntry, AtBase uint64
	// MntNS is set for Exec events: the inode number of the process's
	// mount namespace (0 when unknown).
	MntNS uint32
	// Py is set for PyStack events.
	Py PyStack
	// PyCode is set for PyCode events.
	PyCode PyCode
	// FileID: the file the kernel maps at IP (event.FileID).
	FileID FileID
}

// FileID is how the kernel names the file mapped at IP in a process, as
// it keys rules by file: device as s_dev (major<<20 | minor), inode, size,
// modification time, and IP's offset in the file.
type FileID struct {
	IP   uint64
	File symbolize.FileOffset // Dev as stat gives it
}

// PyCode is a code object's names as the kernel read them when it first saw
// the object. Name, File and Linetable are empty when the kernel could not
// read them whole; Linetable aliases the decoder's buffer.
type PyCode struct {
	Code, Ident uint64
	FirstLine   int32
	Name, File  string
	Linetable   []byte
	HasLines    bool
}

// PyStack is the Python frames the kernel walked, innermost first. Frames
// aliases the decoder's buffer: valid until the next Decode.
type PyStack struct {
	Status uint32 // LT_PY_* bits
	Frames []bpf.LeaktraceLtPyFrame
}

// Decoder turns raw ring-buffer records into Decoded values. Records come from
// the kernel, but are parsed as untrusted input: a malformed one is an error,
// never a panic.
type Decoder struct {
	fd   bpf.LeaktraceLtFdEvent
	task bpf.LeaktraceLtTaskEvent
	exec bpf.LeaktraceLtExecEvent
	mmap bpf.LeaktraceLtMmapEvent
	mapr bpf.LeaktraceLtMapEvent
	py   bpf.LeaktraceLtPyStackEvent
	code bpf.LeaktraceLtPyCodeEvent
	fid  bpf.LeaktraceLtFileIdEvent
}

var errShort = errors.New("record too short")

const (
	headerSize    = int(unsafe.Sizeof(bpf.LeaktraceLtHeader{}))
	fdStackOff    = int(unsafe.Offsetof(bpf.LeaktraceLtFdEvent{}.Stack))
	taskStackOff  = int(unsafe.Offsetof(bpf.LeaktraceLtTaskEvent{}.Stack))
	mapStackOff   = int(unsafe.Offsetof(bpf.LeaktraceLtMapEvent{}.Stack))
	mapNameOff    = int(unsafe.Offsetof(bpf.LeaktraceLtMapEvent{}.Name))
	stackBytesOff = int(unsafe.Offsetof(bpf.LeaktraceLtStack{}.Stack))
	kstackOff     = int(unsafe.Offsetof(bpf.LeaktraceLtStack{}.Kstack))
	pyFramesOff   = int(unsafe.Offsetof(bpf.LeaktraceLtPyStackEvent{}.Frames))
	pyFrameSize   = int(unsafe.Sizeof(bpf.LeaktraceLtPyFrame{}))
)

// fill copies raw into the struct at dst (of size n), zeroing what raw lacks.
func fill(dst unsafe.Pointer, n int, raw []byte) { fillUpTo(dst, n, n, raw) }

// fillUpTo is fill that zeroes only up to zeroTo: a record's stack bytes past
// what was sent are never read (stack_len is checked against the record), and
// clearing 8 KiB per record is most of the decoder's time.
func fillUpTo(dst unsafe.Pointer, n, zeroTo int, raw []byte) {
	b := unsafe.Slice((*byte)(dst), n)
	c := copy(b, raw)
	if c < zeroTo {
		clear(b[c:zeroTo])
	}
}

// Decode decodes one record into d.
func (dec *Decoder) Decode(raw []byte, d *Decoded) error {
	if len(raw) < headerSize {
		return fmt.Errorf("%w: %d bytes", errShort, len(raw))
	}
	typ := binary.LittleEndian.Uint16(raw[24:26])
	*d = Decoded{}
	switch bpf.LeaktraceLtEventType(typ) {
	case bpf.LeaktraceLtEventTypeLT_EV_FD_OPEN, bpf.LeaktraceLtEventTypeLT_EV_FD_CLOSE, bpf.LeaktraceLtEventTypeLT_EV_CLOSE_RANGE,
		bpf.LeaktraceLtEventTypeLT_EV_FD_UPDATE, bpf.LeaktraceLtEventTypeLT_EV_FD_FAIL:
		return dec.decodeFD(raw, d)
	case bpf.LeaktraceLtEventTypeLT_EV_TASK_NEW, bpf.LeaktraceLtEventTypeLT_EV_TASK_EXIT,
		bpf.LeaktraceLtEventTypeLT_EV_EXIT_GROUP, bpf.LeaktraceLtEventTypeLT_EV_REAP:
		return dec.decodeTask(raw, d)
	case bpf.LeaktraceLtEventTypeLT_EV_EXEC:
		return dec.decodeExec(raw, d)
	case bpf.LeaktraceLtEventTypeLT_EV_MMAP:
		return dec.decodeMmap(raw, d)
	case bpf.LeaktraceLtEventTypeLT_EV_MAP_NEW, bpf.LeaktraceLtEventTypeLT_EV_MAP_FREE, bpf.LeaktraceLtEventTypeLT_EV_MAP_MOVE,
		bpf.LeaktraceLtEventTypeLT_EV_MAP_PROT:
		return dec.decodeMap(raw, d)
	case bpf.LeaktraceLtEventTypeLT_EV_PY_STACK:
		return dec.decodePyStack(raw, d)
	case bpf.LeaktraceLtEventTypeLT_EV_PY_CODE:
		return dec.decodePyCode(raw, d)
	case bpf.LeaktraceLtEventTypeLT_EV_FILE_ID:
		return dec.decodeFileID(raw, d)
	}
	return fmt.Errorf("unknown record type %d", typ)
}

func header(h *bpf.LeaktraceLtHeader, e *event.Event) {
	e.Time = h.Ts
	e.Files = h.Files
	e.PID = h.Pid
	e.TID = h.Tid
	e.Syscall = h.Nr
	e.Comm = cstr(h.Comm[:])
}

func (dec *Decoder) stack(s *bpf.LeaktraceLtStack, raw []byte, off int, d *Decoded) error {
	if len(raw) < off+kstackOff {
		return nil // no stack in this record
	}
	st := Stack{Present: true, IP: s.Ip, SP: s.Sp, BP: s.Bp, Img: s.Img, Shared: s.Flags&stackShared != 0}
	have := len(raw) - off - kstackOff
	switch {
	case s.Flags&stackSite != 0:
		st.Site, st.SiteKnown = s.Site, true
	case s.Flags&stackNew != 0:
		if s.Known == 0 || s.Known > uint32(len(s.Kstack)) || int(s.Known)*8 > have {
			return fmt.Errorf("new site of %d frames beyond record (%d bytes)", s.Known, have)
		}
		st.Site, st.New, st.Known = s.Site, true, s.Kstack[:s.Known]
	default:
		if s.KstackLen > uint32(len(s.Kstack)) || s.Known >= s.KstackLen && s.Known > 0 {
			return fmt.Errorf("kernel stack of %d frames (%d known) out of range", s.KstackLen, s.Known)
		}
		have = len(raw) - off - stackBytesOff
		if have < 0 || int(s.StackLen) > have || s.StackLen > uint32(len(s.Stack)) {
			return fmt.Errorf("stack length %d beyond record (%d bytes)", s.StackLen, len(raw)-off)
		}
		st.Known, st.KernelFP, st.Bytes = s.Kstack[:s.Known], s.Kstack[s.Known:s.KstackLen], s.Stack[:s.StackLen]
	}
	d.Stack = st
	return nil
}

const (
	stackSite   = uint32(1) << 0 // LT_STK_SITE
	stackNew    = uint32(1) << 1 // LT_STK_NEW
	stackShared = uint32(1) << 3 // LT_STK_SHARED
)

func (dec *Decoder) decodeFD(raw []byte, d *Decoded) error {
	r := &dec.fd
	if len(raw) < int(unsafe.Offsetof(r.Sock)) {
		return fmt.Errorf("%w: fd event of %d bytes", errShort, len(raw))
	}
	fillUpTo(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), fdStackOff+stackBytesOff, raw)
	e := &d.Event
	header(&r.H, e)
	e.FD, e.FD2 = r.Fd, r.Fd2
	e.Enter = r.EnterTs
	e.File = r.File
	e.Flags = r.Flags
	switch bpf.LeaktraceLtEventType(r.H.Type) {
	case bpf.LeaktraceLtEventTypeLT_EV_FD_CLOSE:
		e.Type = event.FDClose
		return nil
	case bpf.LeaktraceLtEventTypeLT_EV_CLOSE_RANGE:
		e.Type = event.CloseRange
		return nil
	case bpf.LeaktraceLtEventTypeLT_EV_FD_FAIL:
		e.Type = event.FDFail
		e.Errno = int32(-r.Ret)
		return nil
	case bpf.LeaktraceLtEventTypeLT_EV_FD_UPDATE:
		if len(raw) < int(unsafe.Offsetof(r.Path)) {
			return fmt.Errorf("%w: fd update of %d bytes", errShort, len(raw))
		}
		e.Type = event.FDUpdate
		e.Kind, e.Target = classify(r)
		return nil
	}
	e.Type = event.FDOpen
	if len(raw) < fdStackOff {
		return fmt.Errorf("%w: fd open event of %d bytes", errShort, len(raw))
	}
	e.Kind, e.Target = classify(r)
	e.Install = install(r.H.Nr, r.Flags&flagReceived != 0)
	if e.Install == event.InstallPair {
		e.Target2 = e.Target // both ends share one inode and description
	}
	return dec.stack(&r.Stack, raw, fdStackOff, d)
}

func (dec *Decoder) decodeTask(raw []byte, d *Decoded) error {
	r := &dec.task
	if len(raw) < taskStackOff {
		return fmt.Errorf("%w: task event of %d bytes", errShort, len(raw))
	}
	fillUpTo(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), taskStackOff+stackBytesOff, raw)
	e := &d.Event
	header(&r.H, e)
	e.ChildPID, e.ChildTID, e.ChildFiles = r.ChildPid, r.ChildTid, r.ChildFiles
	e.IsThread = r.IsThread != 0
	e.GroupDead = r.GroupDead != 0
	e.ExitCode = r.ExitCode
	e.PPID = r.Ppid
	e.Autoreap = r.Autoreap != 0
	e.FD, e.FD2 = -1, -1
	switch bpf.LeaktraceLtEventType(r.H.Type) {
	case bpf.LeaktraceLtEventTypeLT_EV_TASK_EXIT:
		e.Type = event.TaskExit
		return nil
	case bpf.LeaktraceLtEventTypeLT_EV_EXIT_GROUP:
		e.Type = event.ExitGroup
		return nil
	case bpf.LeaktraceLtEventTypeLT_EV_REAP:
		e.Type = event.Reap
		return nil
	}
	e.Type = event.TaskNew
	if e.IsThread {
		e.Kind = event.KindThread
	} else {
		e.Kind = event.KindProcess
	}
	return dec.stack(&r.Stack, raw, taskStackOff, d)
}

func (dec *Decoder) decodeExec(raw []byte, d *Decoded) error {
	r := &dec.exec
	if len(raw) < int(unsafe.Sizeof(*r)) {
		return fmt.Errorf("%w: exec event of %d bytes", errShort, len(raw))
	}
	fill(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), raw)
	e := &d.Event
	header(&r.H, e)
	e.Type = event.Exec
	e.FD, e.FD2 = -1, -1
	e.ChildTID = r.OldTid
	words := min(int(r.FdbitsWords), len(r.Fdbits))
	e.OpenFDs = append([]uint64(nil), r.Fdbits[:words]...)
	e.OpenFDsComplete = int(r.MaxFds) <= words*64
	e.Exe = dentryPath(r.Path[:], r.Depth)
	d.AtEntry, d.AtBase = r.AtEntry, r.AtBase
	d.MntNS = r.MntNs
	return nil
}

func (dec *Decoder) decodeMmap(raw []byte, d *Decoded) error {
	r := &dec.mmap
	if len(raw) < int(unsafe.Sizeof(*r)) {
		return fmt.Errorf("%w: mmap event of %d bytes", errShort, len(raw))
	}
	fill(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), raw)
	e := &d.Event
	header(&r.H, e)
	e.Type = event.Mmap
	e.FD, e.FD2 = -1, -1
	d.Map = Mapping{Addr: r.Addr, Len: r.Len, Offset: r.Pgoff, Path: dentryPath(r.Path[:], r.Depth)}
	e.Target = d.Map.Path
	return nil
}

// decodeMap decodes a mapping made, released or moved. Only a creation
// carries a name and a stack; the others end before the name.
func (dec *Decoder) decodeMap(raw []byte, d *Decoded) error {
	r := &dec.mapr
	if len(raw) < mapNameOff {
		return fmt.Errorf("%w: mapping event of %d bytes", errShort, len(raw))
	}
	fillUpTo(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), mapStackOff+stackBytesOff, raw)
	e := &d.Event
	header(&r.H, e)
	e.FD, e.FD2 = -1, -1
	e.Kind = event.KindMapping
	e.Addr, e.Len = r.Addr, r.Len
	e.Flags = r.Flags
	switch bpf.LeaktraceLtEventType(r.H.Type) {
	case bpf.LeaktraceLtEventTypeLT_EV_MAP_FREE:
		e.Type = event.MapFree
		return nil
	case bpf.LeaktraceLtEventTypeLT_EV_MAP_MOVE:
		e.Type = event.MapMove
		e.OldAddr, e.OldLen = r.OldAddr, r.OldLen
		return nil
	case bpf.LeaktraceLtEventTypeLT_EV_MAP_PROT:
		e.Type = event.MapProt
		if r.Prot&7 == 0 {
			e.Flags |= event.FlagMapReserved
			return nil
		}
		if len(raw) < mapStackOff {
			return fmt.Errorf("%w: mprotect record of %d bytes", errShort, len(raw))
		}
		return dec.stack(&r.Stack, raw, mapStackOff, d)
	}
	e.Type = event.MapNew
	if r.Prot&7 == 0 {
		e.Flags |= event.FlagMapReserved
	}
	if len(raw) < mapStackOff {
		return fmt.Errorf("%w: mapping creation of %d bytes", errShort, len(raw))
	}
	switch {
	case r.Flags&uint32(event.FlagMapBrk) != 0:
		e.Target = "[heap]"
	case r.Flags&uint32(event.FlagMapFile) != 0:
		e.Target = cstr(r.Name[:])
		if e.Target == "" {
			e.Target = fmt.Sprintf("inode %d", r.Ino)
		}
	default:
		e.Target = "[anon]"
	}
	if r.Flags&uint32(event.FlagMapShared) != 0 && r.Flags&uint32(event.FlagMapFile) == 0 {
		e.Target = "[anon shared]"
	}
	return dec.stack(&r.Stack, raw, mapStackOff, d)
}

func (dec *Decoder) decodePyStack(raw []byte, d *Decoded) error {
	r := &dec.py
	if len(raw) < pyFramesOff {
		return fmt.Errorf("%w: python stack of %d bytes", errShort, len(raw))
	}
	fill(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), raw)
	if r.Depth > uint32(len(r.Frames)) || pyFramesOff+int(r.Depth)*pyFrameSize > len(raw) {
		return fmt.Errorf("python stack depth %d beyond record (%d bytes)", r.Depth, len(raw))
	}
	e := &d.Event
	header(&r.H, e)
	e.Type = event.PyStack
	e.FD, e.FD2 = -1, -1
	d.Py = PyStack{Status: r.Status, Frames: r.Frames[:r.Depth]}
	return nil
}

func (dec *Decoder) decodePyCode(raw []byte, d *Decoded) error {
	r := &dec.code
	if len(raw) < int(unsafe.Sizeof(*r)) {
		return fmt.Errorf("%w: python code of %d bytes", errShort, len(raw))
	}
	fill(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), raw)
	e := &d.Event
	header(&r.H, e)
	e.Type = event.PyCode
	e.FD, e.FD2 = -1, -1
	c := PyCode{Code: r.Code, Ident: r.Ident, FirstLine: r.Firstlineno}
	if r.Flags&1 != 0 && int(r.NameLen) <= len(r.Name) {
		c.Name = cString(r.Name[:r.NameLen])
	}
	if r.Flags&2 != 0 && int(r.FileLen) <= len(r.File) {
		c.File = cString(r.File[:r.FileLen])
	}
	if r.Flags&4 != 0 && int(r.LinetableLen) <= len(r.Linetable) {
		c.Linetable, c.HasLines = r.Linetable[:r.LinetableLen], true
	}
	d.PyCode = c
	return nil
}

// cString is the bytes of a fixed-size C char array as a string.
func cString(b []int8) string {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = byte(c)
	}
	return string(out)
}

// dentryPath joins components sent leaf first.
func dentryPath(comps [][64]int8, depth uint32) string {
	n := min(int(depth), len(comps))
	if n == 0 {
		return ""
	}
	var b strings.Builder
	for i := n - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(cstr(comps[i][:]))
	}
	return b.String()
}

func cstr(b []int8) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), n))
}

const (
	pidfsMagic    = 0x50494446
	flagDPath     = 1 << 6 // LT_FD_DPATH
	flagDPathFull = 1 << 7 // LT_FD_DPATH_FULL
	flagReceived  = 1 << 5 // LT_FD_RECEIVED
)

// classify names the kind and target of a new fd from what the kernel saw.
func classify(r *bpf.LeaktraceLtFdEvent) (event.Kind, string) {
	name := cstr(r.Name[:])
	path := cstr(r.Path[:])
	sys := lookupSyscall(r.H.Nr)
	var hint event.Kind
	byPath := false
	if sys != nil {
		hint = sys.Kind
		byPath = sys.PathArg
	}
	if r.Flags&flagDPath != 0 {
		// The kernel named the file from its dentries: no absolute path
		// argument did (relative open, open_by_handle_at, SCM_RIGHTS).
		var comps [4][64]int8
		for i := range comps {
			copy(comps[i][:], r.Path[i*64:(i+1)*64])
		}
		path = dentryPath(comps[:], r.Depth)
		if path != "" && r.Flags&flagDPathFull == 0 {
			path = "…" + path // deeper than the components the event holds
		}
	}
	if r.Magic == pidfsMagic {
		// Since 6.9 pidfds are regular files of pidfs, not anonymous inodes.
		return event.KindPidfd, "anon_inode:[pidfd]"
	}
	switch r.Mode & 0o170000 {
	case 0o100000: // S_IFREG
		if hint == event.KindMemfd || strings.HasPrefix(name, "memfd:") {
			return event.KindMemfd, "memfd:" + strings.TrimPrefix(name, "memfd:")
		}
		if path != "" && strings.HasPrefix(name, "#") && !strings.HasSuffix(path, "/"+name) {
			// O_TMPFILE: the path argument is the directory; the file has
			// no name but the one the kernel shows.
			return event.KindFile, strings.TrimSuffix(path, "/") + "/" + name + " (deleted)"
		}
		if path != "" {
			return event.KindFile, path
		}
		return event.KindFile, name
	case 0o040000: // S_IFDIR
		if path != "" {
			return event.KindDir, path
		}
		return event.KindDir, name
	case 0o140000: // S_IFSOCK
		return event.KindSocket, sockTarget(r)
	case 0o010000: // S_IFIFO
		if path != "" {
			return event.KindPipe, path // a named fifo
		}
		return event.KindPipe, fmt.Sprintf("pipe:[%d]", r.Ino)
	case 0o020000, 0o060000: // S_IFCHR, S_IFBLK
		if path != "" {
			return event.KindFile, path
		}
		return event.KindFile, name
	}
	// Anonymous inodes: the dentry is named after what they are.
	switch name {
	case "[eventfd]":
		return event.KindEventfd, "anon_inode:[eventfd]"
	case "[eventpoll]":
		return event.KindEpoll, "anon_inode:[eventpoll]"
	case "[timerfd]":
		return event.KindTimerfd, "anon_inode:[timerfd]"
	case "[signalfd]":
		return event.KindSignalfd, "anon_inode:[signalfd]"
	case "inotify":
		return event.KindInotify, "anon_inode:inotify"
	case "[fanotify]":
		return event.KindFanotify, "anon_inode:[fanotify]"
	case "[pidfd]":
		return event.KindPidfd, "anon_inode:[pidfd]"
	case "[io_uring]":
		return event.KindIOUring, "anon_inode:[io_uring]"
	}
	if strings.HasPrefix(name, "pidfd") || hint == event.KindPidfd {
		return event.KindPidfd, "anon_inode:[pidfd]"
	}
	if path != "" && byPath {
		return event.KindFile, path
	}
	if name != "" {
		return event.KindAnon, "anon_inode:" + name
	}
	return event.KindAnon, "anon_inode"
}

var sockTypes = map[uint16]string{1: "stream", 2: "dgram", 3: "raw", 5: "seqpacket"}

func sockTarget(r *bpf.LeaktraceLtFdEvent) string {
	s := &r.Sock
	if r.Flags&(1<<2) == 0 {
		return fmt.Sprintf("socket:[%d]", r.Ino)
	}
	switch s.Family {
	case 1: // AF_UNIX
		return fmt.Sprintf("unix %s socket:[%d]", sockTypes[s.Type], r.Ino)
	case 2, 10: // AF_INET, AF_INET6
		proto := "ip"
		switch s.Protocol {
		case 6, 262: // IPPROTO_TCP, IPPROTO_MPTCP (Go's listeners)
			proto = "tcp"
		case 17:
			proto = "udp"
		case 1, 58:
			proto = "icmp"
		}
		var src, dst netip.Addr
		if s.Family == 2 {
			src = netip.AddrFrom4([4]byte(s.Saddr[:4]))
			dst = netip.AddrFrom4([4]byte(s.Daddr[:4]))
		} else {
			proto += "6"
			src = netip.AddrFrom16(s.Saddr)
			dst = netip.AddrFrom16(s.Daddr)
		}
		t := proto
		if s.Sport != 0 || !src.IsUnspecified() {
			t += " " + netip.AddrPortFrom(src, s.Sport).String()
		}
		if s.Dport != 0 {
			t += " -> " + netip.AddrPortFrom(dst, s.Dport).String()
		}
		return t
	case 16:
		return fmt.Sprintf("netlink socket:[%d]", r.Ino)
	}
	return fmt.Sprintf("socket family %d:[%d]", s.Family, r.Ino)
}

func (dec *Decoder) decodeFileID(raw []byte, d *Decoded) error {
	r := &dec.fid
	if len(raw) < int(unsafe.Sizeof(*r)) {
		return fmt.Errorf("%w: file id of %d bytes", errShort, len(raw))
	}
	fill(unsafe.Pointer(r), int(unsafe.Sizeof(*r)), raw)
	if r.File.Ino == 0 || r.File.MtimeNsec >= 1e9 {
		return fmt.Errorf("file id of inode %d, mtime ns %d: out of range", r.File.Ino, r.File.MtimeNsec)
	}
	header(&r.H, &d.Event)
	d.Event.Type = event.FileID
	d.FileID = FileID{IP: r.Ip, File: symbolize.FileOffset{
		Dev:       unix.Mkdev(r.File.Dev>>20, r.File.Dev&(1<<20-1)),
		Ino:       r.File.Ino,
		Size:      int64(r.File.Size),
		MtimeNano: r.File.MtimeSec*1e9 + int64(r.File.MtimeNsec),
		Off:       r.File.Off,
	}}
	return nil
}
