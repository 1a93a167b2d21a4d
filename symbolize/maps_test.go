package symbolize

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestAddressSpaceMap(t *testing.T) {
	base := []Mapping{
		{Start: 0x1000, End: 0x4000, Offset: 0, Path: "/a"},
		{Start: 0x6000, End: 0x8000, Offset: 0x2000, Path: "/b"},
	}
	tests := []struct {
		name string
		add  Mapping
		want []Mapping
	}{
		{"disjoint before", Mapping{Start: 0, End: 0x1000, Path: "/n"}, []Mapping{
			{0, 0x1000, 0, "/n"}, base[0], base[1]}},
		{"in a hole", Mapping{Start: 0x4000, End: 0x6000, Path: "/n"}, []Mapping{
			base[0], {0x4000, 0x6000, 0, "/n"}, base[1]}},
		{"splits the middle", Mapping{Start: 0x2000, End: 0x3000, Offset: 0x9000, Path: "/n"}, []Mapping{
			{0x1000, 0x2000, 0, "/a"}, {0x2000, 0x3000, 0x9000, "/n"}, {0x3000, 0x4000, 0x2000, "/a"}, base[1]}},
		{"cuts a head", Mapping{Start: 0x800, End: 0x2000, Path: "/n"}, []Mapping{
			{0x800, 0x2000, 0, "/n"}, {0x2000, 0x4000, 0x1000, "/a"}, base[1]}},
		{"cuts a tail", Mapping{Start: 0x3000, End: 0x5000, Path: "/n"}, []Mapping{
			{0x1000, 0x3000, 0, "/a"}, {0x3000, 0x5000, 0, "/n"}, base[1]}},
		{"spans two", Mapping{Start: 0x2000, End: 0x7000, Path: "/n"}, []Mapping{
			{0x1000, 0x2000, 0, "/a"}, {0x2000, 0x7000, 0, "/n"}, {0x7000, 0x8000, 0x3000, "/b"}}},
		{"covers all", Mapping{Start: 0, End: 0x10000, Path: "/n"}, []Mapping{{0, 0x10000, 0, "/n"}}},
		{"exact replace", Mapping{Start: 0x6000, End: 0x8000, Offset: 0x5000, Path: "/n"}, []Mapping{
			base[0], {0x6000, 0x8000, 0x5000, "/n"}}},
		{"empty is ignored", Mapping{Start: 0x2000, End: 0x2000, Path: "/n"}, base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s AddressSpace
			for _, m := range base {
				s.Map(m)
			}
			s.Map(tc.add)
			if got := s.Mappings(); !slices.Equal(got, tc.want) {
				t.Fatalf("got  %x\nwant %x", got, tc.want)
			}
			if s.Len() != len(tc.want) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(tc.want))
			}
		})
	}
}

func TestAddressSpaceLookupCloneReset(t *testing.T) {
	var s AddressSpace
	s.Map(Mapping{Start: 0x1000, End: 0x2000, Path: "/a"})
	s.Map(Mapping{Start: 0x3000, End: 0x4000, Path: "/b"})
	for _, tc := range []struct {
		addr uint64
		path string
	}{{0xfff, ""}, {0x1000, "/a"}, {0x1fff, "/a"}, {0x2000, ""}, {0x3abc, "/b"}, {0x4000, ""}} {
		m, ok := s.Lookup(tc.addr)
		if ok != (tc.path != "") || m.Path != tc.path {
			t.Errorf("Lookup(%#x) = %v, %v; want %q", tc.addr, m, ok, tc.path)
		}
	}
	c := s.Clone()
	c.Map(Mapping{Start: 0x1000, End: 0x4000, Path: "/c"})
	if s.Len() != 2 || c.Len() != 1 {
		t.Fatalf("clone shares state: parent %d, clone %d mappings", s.Len(), c.Len())
	}
	s.Reset()
	if s.Len() != 0 || c.Len() != 1 {
		t.Fatalf("after Reset: %d, clone %d", s.Len(), c.Len())
	}
}

func TestParseMaps(t *testing.T) {
	text := `55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234                       /usr/bin/prog
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1234                       /usr/bin/prog
7f0000000000-7f0000021000 rw-p 00000000 00:00 0                          [heap]
7f1000000000-7f1000100000 r-xp 00028000 08:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f2000000000-7f2000001000 r-xp 00000000 00:00 0 
7f3000000000-7f3000002000 r-xp 00000000 00:00 0                          [vdso]
7f4000000000-7f4000001000 r-xp 00002000 00:05 77                         /tmp/old build/a.out (deleted)
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`
	got, err := ParseMaps(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{0x55d0c0a01000, 0x55d0c0a02000, 0x1000, "/usr/bin/prog"},
		{0x7f1000000000, 0x7f1000100000, 0x28000, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{0x7f4000000000, 0x7f4000001000, 0x2000, "/tmp/old build/a.out"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	for _, bad := range []string{"zz-10 r-xp 0 0:0 0 /x\n", "10-zz r-xp 0 0:0 0 /x\n", "20-10 r-xp 0 0:0 0 /x\n", "10-20 r-xp\n", "1020 r-xp 0 0:0 0 /x\n"} {
		if _, err := ParseMaps(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseMaps(%q): no error", bad)
		}
	}
}

func TestReadMapsSelf(t *testing.T) {
	maps, err := ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var s AddressSpace
	for _, m := range maps {
		s.Map(m)
	}
	pc := funcPC(t)
	if m, ok := s.Lookup(pc); !ok || m.Path != exe {
		t.Fatalf("Lookup(own pc %#x) = %v, %v; want %s", pc, m, ok, exe)
	}
	if _, err := ReadMaps(-1); err == nil || !strings.Contains(err.Error(), "pid -1") {
		t.Fatalf("ReadMaps(-1) error = %v", err)
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add("55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1234 /usr/bin/prog\n")
	f.Add("1-2 r-xp 0 0 0 [vdso]\n\n1-2 --xp 3 4 5 /a b (deleted)")
	f.Fuzz(func(t *testing.T, text string) {
		maps, err := ParseMaps(strings.NewReader(text))
		if err != nil {
			return
		}
		var s AddressSpace
		for _, m := range maps {
			if m.End < m.Start || !strings.HasPrefix(m.Path, "/") {
				t.Fatalf("bad mapping %v", m)
			}
			s.Map(m)
		}
		prev := uint64(0)
		for _, m := range s.Mappings() {
			if m.Start < prev || m.End <= m.Start {
				t.Fatalf("address space not sorted and disjoint: %v", s.Mappings())
			}
			prev = m.End
		}
	})
}
