package symbolize

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/leaktrace/leaktrace/report"
)

// Location is a frame position that stays meaningful after the process is gone.
type Location struct {
	Module string // path of the ELF file
	Vaddr  uint64 // ELF virtual address in that module (load bias already removed)
	Addr   uint64 // the absolute address in the process, for display
}

// Locate maps absolute pcs to Locations, appending to out. An address in no mapping
// gets Module "" and Vaddr = Addr; an address in a file that cannot be parsed gets
// the file offset as Vaddr.
func Locate(s *AddressSpace, c *Cache, pcs []uint64, out []Location) []Location {
	for _, pc := range pcs {
		m, ok := s.Lookup(pc)
		if !ok && pc > 0 {
			// A return address just past a noreturn call at the end of a mapping.
			m, ok = s.Lookup(pc - 1)
		}
		if !ok {
			out = append(out, Location{Vaddr: pc, Addr: pc})
			continue
		}
		off := m.Offset + (pc - m.Start)
		loc := Location{Module: m.Path, Vaddr: off, Addr: pc}
		if mod, err := c.cached(m.Path); err == nil {
			if v, ok := mod.Vaddr(off); ok {
				loc.Vaddr = v
			}
		}
		out = append(out, loc)
	}
	return out
}

// maxFrameCache bounds the per-module cache of symbolized addresses.
const maxFrameCache = 1 << 16

// Symbolize returns the frames for one location, innermost first: one frame, or
// several when the address is in code inlined into its caller. With isReturnAddress
// the call site (Vaddr-1) is looked up instead of Vaddr. An unknown address gives one
// frame with Function "" and the module set.
func (c *Cache) Symbolize(loc Location, isReturnAddress bool) []report.Frame {
	unknown := []report.Frame{{Address: loc.Addr, Module: loc.Module}}
	if loc.Module == "" {
		return unknown
	}
	// Not Module: a file rebuilt since is noticed at exec, and the module parsed
	// then refuses to symbolize from the new file (see loadSymbols).
	m, err := c.cached(loc.Module)
	if err != nil {
		return unknown
	}
	pc := loc.Vaddr
	if isReturnAddress && pc > 0 {
		pc--
	}
	frames := m.symbolize(pc)
	if len(frames) == 0 {
		return unknown
	}
	out := make([]report.Frame, len(frames))
	for i, f := range frames {
		f.Address = loc.Addr
		f.Module = loc.Module
		out[i] = f
	}
	return out
}

// symState is a module's symbolization data, loaded on first use.
type symState struct {
	once sync.Once
	err  error

	mu     sync.Mutex // guards everything below
	syms   []elfSym   // sorted by addr, one per address
	goTab  *gosym.Table
	dw     *dwarfLines
	frames map[uint64][]report.Frame
}

// symbolize returns the frames of vaddr without Address and Module.
func (m *Module) symbolize(vaddr uint64) (frames []report.Frame) {
	s := &m.sym
	s.once.Do(func() { s.err = guard(m.path, m.loadSymbols) })
	if s.err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.frames[vaddr]; ok {
		return f
	}
	defer func() {
		// DWARF and .gopclntab are read lazily, per address: a malformed
		// table found here costs this frame its name, not the process.
		if r := recover(); r != nil {
			frames = nil
		}
	}()
	name := lookupSym(s.syms, vaddr)
	// DWARF first, Go binaries included: .gopclntab names the outermost function but
	// gives the file:line of the code inlined deepest, which misleads without the
	// inlined frames that only DWARF lists here.
	if s.dw != nil {
		outer := name
		if m.isGo {
			outer = "" // DWARF's Go names lack the ELF symbols' ABI suffixes (.abi0)
		}
		frames = s.dw.frames(vaddr, outer)
	}
	if frames == nil && s.goTab != nil {
		if file, line, fn := s.goTab.PCToLine(vaddr); fn != nil {
			frames = []report.Frame{{Function: fn.Name, File: file, Line: line}}
		}
	}
	if frames == nil && name != "" {
		frames = []report.Frame{{Function: name}}
	}
	for i := range frames {
		frames[i].Function = demangled(frames[i].Function)
	}
	if len(s.frames) >= maxFrameCache {
		clear(s.frames)
	}
	s.frames[vaddr] = frames
	return frames
}

// loadSymbols reads the symbol tables, .gopclntab and DWARF of the module, or of its
// separate debug file when the module itself was stripped.
func (m *Module) loadSymbols() error {
	f := m.file
	if f == nil {
		var err error
		if f, err = os.Open(m.path); err != nil {
			return err
		}
		defer f.Close()
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if identOf(fi) != m.ident {
		// The unwinder's view and the file disagree: symbols would be wrong.
		return fmt.Errorf("%s changed on disk since it was parsed", m.path)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return err
	}
	s := &m.sym
	s.frames = make(map[uint64][]report.Frame)
	if m.isGo {
		s.goTab = goTable(ef)
	}
	s.syms = elfSymbols(ef)
	dw, err := ef.DWARF()
	if (err != nil || !hasLines(ef)) && s.goTab == nil {
		if dbg := openDebugFile(ef, m.path); dbg != nil {
			defer dbg.Close()
			if dw2, err2 := dbg.DWARF(); err2 == nil {
				dw, err = dw2, nil
			}
			if len(s.syms) == 0 || ef.Section(".symtab") == nil {
				if syms := elfSymbols(dbg); len(syms) > 0 {
					s.syms = syms
				}
			}
		}
	}
	if err == nil && dw != nil {
		s.dw = newDwarfLines(dw)
	}
	return nil
}

func hasLines(ef *elf.File) bool {
	return ef.Section(".debug_line") != nil || ef.Section(".zdebug_line") != nil
}

// goTable reads .gopclntab.
func goTable(ef *elf.File) *gosym.Table {
	var data []byte
	if s := ef.Section(".gopclntab"); s != nil {
		data, _ = sectionData(s)
	}
	text := ef.Section(".text")
	if data == nil || text == nil {
		return nil
	}
	var symtab []byte
	if s := ef.Section(".gosymtab"); s != nil {
		symtab, _ = sectionData(s)
	}
	t, err := gosym.NewTable(symtab, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil
	}
	return t
}

// elfSym is one function symbol.
type elfSym struct {
	addr, size uint64
	name       string
}

// elfSymbols returns the function symbols of .symtab, or of .dynsym when there is no
// .symtab, sorted by address with one name per address.
func elfSymbols(ef *elf.File) []elfSym {
	raw, err := ef.Symbols()
	if err != nil || len(raw) == 0 {
		raw, _ = ef.DynamicSymbols()
	}
	type cand struct {
		elfSym
		bind elf.SymBind
	}
	var cs []cand
	for _, s := range raw {
		t := elf.ST_TYPE(s.Info)
		if (t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC) || s.Section == elf.SHN_UNDEF || s.Value == 0 {
			continue
		}
		name := s.Name
		if i := strings.IndexByte(name, '@'); i > 0 {
			name = name[:i] // a symbol version: __libc_start_main@@GLIBC_2.34
		}
		cs = append(cs, cand{elfSym{s.Value, s.Size, name}, elf.ST_BIND(s.Info)})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].addr != cs[j].addr {
			return cs[i].addr < cs[j].addr
		}
		return betterName(cs[i].name, cs[i].bind, cs[j].name, cs[j].bind)
	})
	out := make([]elfSym, 0, len(cs))
	for _, c := range cs {
		if n := len(out); n > 0 && out[n-1].addr == c.addr {
			out[n-1].size = max(out[n-1].size, c.size)
			continue
		}
		out = append(out, c.elfSym)
	}
	return out
}

// betterName orders aliases of one address: glibc exports open, __open, __libc_open64
// for one function, and users know it as open. Fewer leading underscores win, then
// global over weak over local binding, then the shorter name.
func betterName(a string, ab elf.SymBind, b string, bb elf.SymBind) bool {
	ua, ub := len(a)-len(strings.TrimLeft(a, "_")), len(b)-len(strings.TrimLeft(b, "_"))
	if ua != ub {
		return ua < ub
	}
	if ab != bb {
		return bindRank(ab) < bindRank(bb)
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func bindRank(b elf.SymBind) int {
	switch b {
	case elf.STB_GLOBAL:
		return 0
	case elf.STB_WEAK:
		return 1
	}
	return 2
}

// lookupSym returns the function containing vaddr, or "" if none does.
func lookupSym(syms []elfSym, vaddr uint64) string {
	i := sort.Search(len(syms), func(i int) bool { return syms[i].addr > vaddr }) - 1
	if i < 0 {
		return ""
	}
	s := syms[i]
	// A symbol without a size (hand-written assembly) is taken to extend to the next.
	if s.size == 0 || vaddr-s.addr < s.size {
		return s.name
	}
	return ""
}

// debugDirs is where distributions install separate debug files.
var debugDirs = []string{"/usr/lib/debug"}

// openDebugFile finds the separate debug file of a stripped module, by build id
// (/usr/lib/debug/.build-id/ab/cdef….debug) and then by .gnu_debuglink. A
// module of another mount namespace (/proc/PID/root/…, a container) looks in
// its own root's debug directory first: the host's has files of other builds.
func openDebugFile(ef *elf.File, path string) *elf.File {
	root, inRoot := splitProcRoot(path)
	dirs := debugDirs
	if root != "" {
		dirs = make([]string, 0, 2*len(debugDirs))
		for _, d := range debugDirs {
			dirs = append(dirs, root+d)
		}
		dirs = append(dirs, debugDirs...)
	}
	var cands []string
	if id := buildID(ef); len(id) >= 2 {
		for _, d := range dirs {
			cands = append(cands, fmt.Sprintf("%s/.build-id/%x/%x.debug", d, id[:1], id[1:]))
		}
	}
	if s := ef.Section(".gnu_debuglink"); s != nil {
		if b, err := sectionData(s); err == nil {
			if i := strings.IndexByte(string(b), 0); i > 0 {
				name := string(b[:i])
				dir := path[:strings.LastIndexByte(path, '/')+1]
				cands = append(cands, dir+name, dir+".debug/"+name)
				inDir := inRoot[:strings.LastIndexByte(inRoot, '/')+1]
				for _, d := range dirs {
					cands = append(cands, d+inDir+name)
				}
			}
		}
	}
	id := buildID(ef)
	for _, c := range cands {
		if c == path {
			continue
		}
		if f, err := elf.Open(c); err == nil {
			// A debug file of another build symbolizes wrong (a host's glibc
			// debug info on a container's newer glibc): a module with a build
			// id takes only a debug file with the same one.
			hasDebug := f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil
			if did := buildID(f); hasDebug && (id == nil || bytes.Equal(id, did)) {
				return f
			}
			f.Close()
		}
	}
	return nil
}

// splitProcRoot splits "/proc/PID/root/usr/lib/x.so" into "/proc/PID/root"
// and "/usr/lib/x.so"; a path outside any /proc/PID/root is returned whole
// as the second.
func splitProcRoot(path string) (root, rest string) {
	after, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return "", path
	}
	i := strings.IndexByte(after, '/')
	if i <= 0 || strings.Trim(after[:i], "0123456789") != "" {
		return "", path
	}
	tail, ok := strings.CutPrefix(after[i:], "/root/")
	if !ok {
		return "", path
	}
	return "/proc/" + after[:i] + "/root", "/" + tail
}

// buildID returns the GNU build id note's descriptor.
func buildID(ef *elf.File) []byte {
	s := ef.Section(".note.gnu.build-id")
	if s == nil {
		return nil
	}
	b, err := sectionData(s)
	if err != nil || len(b) < 16 {
		return nil
	}
	nameSz := ef.ByteOrder.Uint32(b[0:4])
	descSz := ef.ByteOrder.Uint32(b[4:8])
	typ := ef.ByteOrder.Uint32(b[8:12])
	off := 12 + (uint64(nameSz)+3)&^3
	if typ != 3 || off+uint64(descSz) > uint64(len(b)) { // NT_GNU_BUILD_ID
		return nil
	}
	return b[off : off+uint64(descSz)]
}

// guard runs a reader of a traced program's ELF, DWARF or Go tables: the
// standard library's parsers can panic on malformed input, and a binary a
// user runs must not bring a privileged leaktrace down.
func guard(path string, read func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading %s: malformed file: %v", path, r)
		}
	}()
	return read()
}
