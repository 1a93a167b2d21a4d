package symbolize

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// elfSymbol returns the value of a symbol of an ELF file.
func elfSymbol(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("%s: no symbol %s", path, name)
	return 0
}

// TestSymbolizeC symbolizes a return address the program reports itself, through the
// mappings the kernel would create at exec.
func TestSymbolizeC(t *testing.T) {
	bin := buildC(t, "-fomit-frame-pointer")
	lines := markerLines(t, "testdata/leak.c")
	out, err := exec.Command(bin, "print", "-").Output()
	if err != nil && len(out) == 0 {
		t.Fatal(err)
	}
	var ra, mainAddr uint64
	if f := strings.Fields(string(out)); len(f) == 2 {
		ra, _ = strconv.ParseUint(f[0], 0, 64)
		mainAddr, _ = strconv.ParseUint(f[1], 0, 64)
	}
	if ra == 0 || mainAddr == 0 {
		t.Fatalf("unexpected output %q", out)
	}
	c := NewCache(4)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	entry := f.Entry
	f.Close()
	bias := mainAddr - elfSymbol(t, bin, "main")
	if got, err := EntryBias(c, bin, bias+entry); err != nil || got != bias {
		t.Fatalf("EntryBias = %#x, %v; want %#x", got, err, bias)
	}
	if got, err := Interp(c, bin); err != nil || !strings.Contains(got, "ld-linux") {
		t.Fatalf("Interp = %q, %v", got, err)
	}
	maps, err := ImageMappings(c, bin, bias)
	if err != nil || len(maps) == 0 {
		t.Fatalf("ImageMappings = %v, %v", maps, err)
	}
	var s AddressSpace
	for _, m := range maps {
		if m.Start%pageSize != 0 || m.End%pageSize != 0 || m.Offset%pageSize != 0 || m.Path != bin {
			t.Fatalf("mapping not page aligned: %+v", m)
		}
		s.Map(m)
	}
	locs := Locate(&s, c, []uint64{ra, 0x10}, nil)
	if locs[0].Module != bin || locs[0].Vaddr != ra-bias || locs[0].Addr != ra {
		t.Fatalf("Locate = %+v, want vaddr %#x in %s", locs[0], ra-bias, bin)
	}
	if locs[1] != (Location{Vaddr: 0x10, Addr: 0x10}) {
		t.Fatalf("Locate(unmapped) = %+v", locs[1])
	}
	frames := c.Symbolize(locs[0], true)
	if len(frames) != 1 || frames[0].Function != "leak_b" || frames[0].Line != lines["b"] ||
		filepath.Base(frames[0].File) != "leak.c" || frames[0].Module != bin || frames[0].Address != ra {
		t.Fatalf("Symbolize(return address into leak_b) = %+v, want leak_b leak.c:%d", frames, lines["b"])
	}
	// Entry points: the function's own line, not the call site before it.
	for _, name := range []string{"leak_a", "leak_c", "main"} {
		v := elfSymbol(t, bin, name)
		frames := c.Symbolize(Location{Module: bin, Vaddr: v, Addr: v + bias}, false)
		if frames[0].Function != name || frames[0].Line == 0 {
			t.Errorf("Symbolize(%s entry) = %+v", name, frames)
		}
	}
	// Outside any function: unknown, but the module is kept.
	if got := c.Symbolize(Location{Module: bin, Vaddr: 0x1, Addr: bias + 1}, false); len(got) != 1 || got[0].Function != "" || got[0].Module != bin {
		t.Errorf("Symbolize(no function) = %+v", got)
	}
	if got := c.Symbolize(Location{Vaddr: 5, Addr: 5}, true); len(got) != 1 || got[0].Function != "" || got[0].Address != 5 {
		t.Errorf("Symbolize(no module) = %+v", got)
	}
}

// TestSymbolizeLibc names glibc's wrappers the way users know them, from .dynsym.
func TestSymbolizeLibc(t *testing.T) {
	const libc = "/lib/x86_64-linux-gnu/libc.so.6"
	f, err := elf.Open(libc)
	if err != nil {
		skipUnlessCI(t, err)
	}
	syms, err := f.DynamicSymbols()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(2)
	for _, s := range syms {
		if s.Name == "open" || s.Name == "socket" {
			got := c.Symbolize(Location{Module: libc, Vaddr: s.Value + 4}, false)
			if got[0].Function != s.Name {
				t.Errorf("Symbolize(%s+4) = %+v", s.Name, got)
			}
		}
	}
}

// TestSymbolizeGo symbolizes a Go binary with DWARF and one without (then from
// .gopclntab alone).
func TestSymbolizeGo(t *testing.T) {
	bin, src := buildGo(t)
	stripped, _ := buildGo(t, "-ldflags=-w")
	declLine := 0
	text, _ := os.ReadFile(src)
	for i, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "func leakOpen") {
			declLine = i + 1
		}
	}
	for _, b := range []string{bin, stripped} {
		c := NewCache(2)
		if interp, err := Interp(c, b); err != nil || interp != "" {
			t.Errorf("Interp(static Go binary) = %q, %v", interp, err)
		}
		v := elfSymbol(t, b, "main.leakOpen")
		frames := c.Symbolize(Location{Module: b, Vaddr: v, Addr: v}, false)
		if len(frames) != 1 || frames[0].Function != "main.leakOpen" || filepath.Base(frames[0].File) != "main.go" || frames[0].Line != declLine {
			t.Errorf("%s: Symbolize(main.leakOpen) = %+v, want %s:%d", filepath.Base(b), frames, src, declLine)
		}
	}
}

func TestCacheRemembersAndEvicts(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "notelf")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := NewCache(2)
	_, err1 := c.Module(bad)
	_, err2 := c.Module(bad)
	if err1 == nil || err1 != err2 {
		t.Fatalf("bad file: errors %v, %v; want the same remembered error", err1, err2)
	}
	if _, err := c.Module(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file: no error")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m1, err := c.Module(exe)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != 2 || c.lru.Len() != 2 {
		t.Fatalf("cache holds %d entries, want 2", len(c.entries))
	}
	if _, ok := c.entries[bad]; ok {
		t.Fatal("least recently used entry not evicted")
	}
	if m2, _ := c.Module(exe); m2 != m1 {
		t.Fatal("module parsed twice")
	}

	// A file replaced on disk is parsed again once the revalidation interval passed.
	c.revalidate = 0
	if _, err := c.Module(bad); err == nil {
		t.Fatal("bad file parsed")
	}
	copyFile(t, exe, bad)
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(bad, future, future); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Module(bad); err != nil || m == nil {
		t.Fatalf("replaced file: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
