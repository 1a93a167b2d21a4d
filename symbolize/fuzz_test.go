package symbolize

import (
	"encoding/binary"
	"os"
	"testing"
)

// FuzzUnwind unwinds arbitrary stack bytes and registers through this test binary's
// real mappings and CFI: whatever the input, Unwind must not panic and must honour
// its contract on the output.
func FuzzUnwind(f *testing.F) {
	maps, err := ReadMaps(os.Getpid())
	if err != nil {
		f.Fatal(err)
	}
	var s AddressSpace
	for _, m := range maps {
		s.Map(m)
	}
	if s.Len() == 0 {
		f.Skip("no executable mappings")
	}
	u := NewUnwinder(NewCache(8))
	seedStack := make([]byte, 256)
	pc := funcPC(&testing.T{})
	binary.LittleEndian.PutUint64(seedStack[8:], pc)
	binary.LittleEndian.PutUint64(seedStack[24:], pc+16)
	f.Add(uint64(0), uint64(0x7ffd0000), uint64(0x7ffd0010), seedStack, []byte{}, uint8(16))
	f.Add(uint64(1234), uint64(0x7ffd0000), uint64(0), []byte{1, 2, 3}, seedStack[:64], uint8(3))
	f.Fuzz(func(t *testing.T, ipSel, sp, bp uint64, stack, kernel []byte, max uint8) {
		// Pick the ip inside a real mapping most of the time, so that CFI is used.
		ms := s.Mappings()
		ip := ipSel
		if ipSel%8 != 0 {
			m := ms[int(ipSel/8)%len(ms)]
			ip = m.Start + (ipSel/8)%(m.End-m.Start)
		}
		var kfp []uint64
		for i := 0; i+8 <= len(kernel); i += 8 {
			kfp = append(kfp, binary.LittleEndian.Uint64(kernel[i:]))
		}
		if len(kfp) > 0 && ipSel%3 == 0 {
			kfp[0] = ip
		}
		prefix := []uint64{42}
		pcs := u.Unwind(&s, Regs{IP: ip, SP: sp, BP: bp}, stack, kfp, int(max), prefix)
		if pcs[0] != 42 {
			t.Fatal("Unwind overwrote the caller's pcs")
		}
		got := pcs[1:]
		if len(got) > int(max) {
			t.Fatalf("%d pcs, max %d", len(got), max)
		}
		if max > 0 && (len(got) == 0 || got[0] != ip) {
			t.Fatalf("pcs %#x do not start with ip %#x", got, ip)
		}
	})
}
