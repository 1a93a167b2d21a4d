package symbolize

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// readelfRow is one row of `readelf --debug-dump=frames-interp`.
type readelfRow struct {
	loc          uint64
	cfa, rbp, ra string // "" when the column is absent
}

// readelfTables runs readelf and returns the rows of each section, by name.
func readelfTables(t *testing.T, path string) map[string][]readelfRow {
	t.Helper()
	re, err := exec.LookPath("readelf")
	if err != nil {
		skipUnlessCI(t, "readelf not installed")
	}
	// readelf exits 1 on libraries whose separate debug file is missing, after
	// printing everything.
	out, err := exec.Command(re, "--debug-dump=frames-interp", path).Output()
	if err != nil && !bytes.Contains(out, []byte("Contents of the")) {
		t.Fatalf("readelf %s: %v", path, err)
	}
	tables := make(map[string][]readelfRow)
	section := ""
	var cols []string
	inFDE := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Contents of the "):
			section = strings.Fields(line)[3]
		case strings.Contains(line, " FDE "):
			inFDE, cols = true, nil
		case strings.Contains(line, " CIE"):
			inFDE, cols = false, nil
		case len(f) > 0 && f[0] == "LOC":
			cols = f
		case inFDE && len(f) == len(cols) && len(f) >= 2 && len(f[0]) == 16:
			loc, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				continue
			}
			r := readelfRow{loc: loc, cfa: f[1]}
			for i, c := range cols[2:] {
				switch c {
				case "rbp":
					r.rbp = f[2+i]
				case "ra":
					r.ra = f[2+i]
				}
			}
			tables[section] = append(tables[section], r)
		}
	}
	return tables
}

// describe renders a rule the way readelf does.
func describe(r rule, isCFA bool) string {
	switch r.kind {
	case ruleCFA:
		return fmt.Sprintf("%s%+d", map[uint64]string{regRSP: "rsp", regRBP: "rbp"}[r.reg], r.off)
	case ruleCFAExpr, ruleExpr:
		return "exp"
	case ruleValExpr:
		return "vexp"
	case ruleOffset:
		return fmt.Sprintf("c%+d", r.off)
	case ruleValOffset:
		return fmt.Sprintf("v%+d", r.off)
	case ruleSame:
		return "s"
	case ruleRegister:
		return fmt.Sprintf("r%d", r.reg)
	}
	return "u"
}

// TestCFIMatchesReadelf checks every row the CFI parser computes for real modules
// against binutils' interpretation of the same tables.
func TestCFIMatchesReadelf(t *testing.T) {
	bins := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
		buildC(t, "-fno-omit-frame-pointer"), buildC(t, "-fomit-frame-pointer")}
	goBin, _ := buildGo(t)
	bins = append(bins, goBin)
	c := NewCache(8)
	for _, bin := range bins {
		m, err := c.Module(bin)
		if err != nil {
			t.Fatal(err)
		}
		tables := readelfTables(t, bin)
		for section, rows := range tables {
			tab := m.ehFrame
			if section == ".debug_frame" {
				tab = m.debugFrame
			}
			if tab == nil {
				t.Fatalf("%s: no table parsed for %s", bin, section)
			}
			checked := 0
			for _, want := range rows {
				f, ok := tab.find(want.loc)
				if !ok {
					t.Fatalf("%s %s: no FDE for %#x", bin, section, want.loc)
				}
				got, err := tab.rowFor(f, want.loc)
				cfaOK := want.cfa == "exp" || strings.HasPrefix(want.cfa, "rsp") || strings.HasPrefix(want.cfa, "rbp")
				if !cfaOK {
					if err == nil {
						t.Errorf("%s %#x: CFA %s should be unsupported, got %s", bin, want.loc, want.cfa, describe(got.cfa, true))
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s %#x: %v (readelf: CFA %s)", bin, want.loc, err, want.cfa)
				}
				if g := describe(got.cfa, true); g != want.cfa {
					t.Errorf("%s %#x: CFA %s, readelf %s", bin, want.loc, g, want.cfa)
				}
				if want.ra != "" && describe(got.ra, false) != want.ra {
					t.Errorf("%s %#x: ra %s, readelf %s", bin, want.loc, describe(got.ra, false), want.ra)
				}
				wantRBP := want.rbp
				if wantRBP == "" {
					wantRBP = "u"
				}
				if !tab.goFrames && describe(got.rbp, false) != wantRBP {
					t.Errorf("%s %#x: rbp %s, readelf %s", bin, want.loc, describe(got.rbp, false), wantRBP)
				}
				checked++
			}
			if checked == 0 {
				t.Errorf("%s %s: no rows checked", bin, section)
			}
			t.Logf("%s %s: %d rows match readelf", bin, section, checked)
		}
	}
}

// TestCFIOps runs hand-built CFI through the parser: the operations compilers emit
// less often than the ones real binaries above exercise.
func TestCFIOps(t *testing.T) {
	cieBody := []byte{1, 'z', 'R', 0, 1, 0x78 /* -8 */, 16, 1, encUdata4,
		0x0c, 7, 8, // def_cfa rsp+8
		0x90, 1, // offset r16 at cfa-8
	}
	insns := []byte{
		0x41,     // advance 1 -> 0x1001
		0x0e, 16, // def_cfa_offset 16
		0x86, 2, // offset rbp at cfa-16
		0x0a,    // remember_state
		0x41,    // -> 0x1002
		0x0d, 6, // def_cfa_register rbp
		0x41,       // -> 0x1003
		0x0b,       // restore_state
		0x41,       // -> 0x1004
		0xc6,       // restore rbp
		0x13, 0x7c, // def_cfa_offset_sf -4*-8 = 32
		0x02, 2, // advance_loc1 2 -> 0x1006
		0x12, 6, 0x7e, // def_cfa_sf rbp, -2*-8=16
		0x08, 6, // same_value rbp
		0x2e, 8, // GNU_args_size
		0x03, 2, 0, // advance_loc2 2 -> 0x1008
		0x16, 6, 2, 0x76, 0x00, // val_expression rbp: breg6 0
		0x04, 2, 0, 0, 0, // advance_loc4 2 -> 0x100a
		0x07, 16, // undefined ra
		0x00, // nop
	}
	sec := cfiSection(cieBody, 0x1000, 0x20, insns)
	tab, err := parseCFI(sec, true, cfiBases{})
	if err != nil || len(tab.fdes) != 1 {
		t.Fatalf("parseCFI: %v, %d FDEs", err, len(tab.fdes))
	}
	tests := []struct {
		pc           uint64
		cfa, rbp, ra string
	}{
		{0x1000, "rsp+8", "u", "c-8"},
		{0x1001, "rsp+16", "c-16", "c-8"},
		{0x1002, "rbp+16", "c-16", "c-8"},
		{0x1003, "rsp+16", "c-16", "c-8"},
		{0x1005, "rsp+32", "u", "c-8"},
		{0x1006, "rbp+16", "s", "c-8"},
		{0x1008, "rbp+16", "vexp", "c-8"},
		{0x100a, "rbp+16", "vexp", "u"},
		{0x101f, "rbp+16", "vexp", "u"},
	}
	for _, tc := range tests {
		f, ok := tab.find(tc.pc)
		if !ok {
			t.Fatalf("no FDE for %#x", tc.pc)
		}
		r, err := tab.rowFor(f, tc.pc)
		if err != nil {
			t.Fatalf("%#x: %v", tc.pc, err)
		}
		if got := [3]string{describe(r.cfa, true), describe(r.rbp, false), describe(r.ra, false)}; got != [3]string{tc.cfa, tc.rbp, tc.ra} {
			t.Errorf("%#x: got %v, want %v", tc.pc, got, [3]string{tc.cfa, tc.rbp, tc.ra})
		}
	}
	if _, ok := tab.find(0x1020); ok {
		t.Errorf("FDE covers its end")
	}
}

// cfiSection builds an .eh_frame with one CIE and one FDE (udata4 addresses),
// followed by the terminator.
func cfiSection(cieBody []byte, start, size uint32, insns []byte) []byte {
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(4+len(cieBody)))
	b = le.AppendUint32(b, 0)
	b = append(b, cieBody...)
	fdeAt := len(b)
	b = le.AppendUint32(b, uint32(4+4+4+1+len(insns)))
	b = le.AppendUint32(b, uint32(fdeAt+4)) // back to the CIE at 0
	b = le.AppendUint32(b, start)
	b = le.AppendUint32(b, size)
	b = append(b, 0) // augmentation data length
	b = append(b, insns...)
	return le.AppendUint32(b, 0)
}

func FuzzParseCFI(f *testing.F) {
	f.Add(cfiSection([]byte{1, 'z', 'R', 0, 1, 0x78, 16, 1, encUdata4, 0x0c, 7, 8, 0x90, 1}, 0x1000, 0x20,
		[]byte{0x41, 0x0e, 16, 0x86, 2, 0x0a, 0x41, 0x0d, 6, 0x0b, 0x0f, 3, 0x77, 8, 0x06}), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, data []byte, ehFrame bool) {
		tab, _ := parseCFI(data, ehFrame, cfiBases{section: 0x400000})
		if tab == nil {
			return
		}
		mem := stackMem{base: 0x7000, b: make([]byte, 64)}
		for i := range tab.fdes {
			f := &tab.fdes[i]
			for _, pc := range []uint64{f.start, f.start + (f.end-f.start)/2, f.end - 1} {
				r, err := tab.rowFor(f, pc)
				if err != nil {
					continue
				}
				rf := regFile{ip: pc, sp: 0x7000, bp: 0x7010}
				for _, ru := range []rule{r.cfa, r.rbp, r.ra} {
					if ru.expr != nil {
						evalExpr(ru.expr, &rf, &mem, 0x7008, ru.kind != ruleCFAExpr)
					}
				}
			}
		}
	})
}
