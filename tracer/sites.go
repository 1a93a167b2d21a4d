//go:build linux

package tracer

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/symbolize"
)

// LearnRules gives the kernel unwind rules of process image img, found
// by Go's unwinder (symbolize.UnwindFrom) on a stack the kernel could not
// unwind itself. Once every frame of a call site has one, the kernel
// unwinds that site's stacks alone and sends them as a site (Stack.Site). A
// rule that names its file and offset is taught for that file, so every
// process that maps the file has it (a shell's next command unwinds its
// dynamic loader's opens without a copy); the rest for img alone. A full
// table evicts its least used rules: the kernel then sends a copy again,
// never a wrong stack.
func (t *Tracer) LearnRules(img uint64, rules []symbolize.Rule) error {
	if len(rules) == 0 || t.maps.UnwindRules == nil {
		return nil
	}
	var keys []bpf.LeaktraceLtProcPc
	var vals, fileVals []bpf.LeaktraceLtRule
	var fileKeys []bpf.LeaktraceLtFilePc
	for _, r := range rules {
		v := bpf.LeaktraceLtRule{CfaOff: r.CFAOff, RaOff: r.RAOff, BpOff: r.BPOff, Kind: uint8(r.Kind),
			CfaBp: b2u8(r.CFAFromBP), BpSaved: b2u8(r.BPSaved)}
		if r.InFile {
			k := fileKey(r.File)
			v.Tag = fileTag(k)
			fileKeys = append(fileKeys, k)
			fileVals = append(fileVals, v)
			continue
		}
		keys = append(keys, bpf.LeaktraceLtProcPc{Img: img, Pc: r.PC})
		vals = append(vals, v)
	}
	if len(keys) > 0 {
		if _, err := t.maps.UnwindRules.BatchUpdate(keys, vals, nil); err != nil {
			return fmt.Errorf("writing %d unwind rules of image %#x: %w", len(keys), img, err)
		}
	}
	if len(fileKeys) > 0 {
		if _, err := t.maps.FileRules.BatchUpdate(fileKeys, fileVals, nil); err != nil {
			return fmt.Errorf("writing %d unwind rules by file: %w", len(fileKeys), err)
		}
	}
	return nil
}

// fileTag names a place in a file in a site's hash (lt_rule.tag): FNV-1a
// of its key, never 0 (0 is a rule by image).
func fileTag(k bpf.LeaktraceLtFilePc) uint64 {
	h := uint64(14695981039346656037)
	for _, w := range [...]uint64{k.Ino, k.Off, uint64(k.MtimeSec), k.Size, uint64(k.Dev)<<32 | uint64(k.MtimeNsec)} {
		for range 8 {
			h ^= w & 0xff
			h *= 1099511628211
			w >>= 8
		}
	}
	if h == 0 {
		h = 1
	}
	return h
}

// fileKey is f as the kernel names it (bpf/stack.h file_of_vma): the
// device as the kernel's s_dev, the modification time split in seconds and
// nanoseconds.
func fileKey(f symbolize.FileOffset) bpf.LeaktraceLtFilePc {
	sec, nsec := f.MtimeNano/1e9, f.MtimeNano%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return bpf.LeaktraceLtFilePc{Ino: f.Ino, Off: f.Off, MtimeSec: sec, Size: uint64(f.Size),
		Dev: unix.Major(f.Dev)<<20 | unix.Minor(f.Dev), MtimeNsec: uint32(nsec)}
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// TakeSettled reads and clears the kernel's counts of handles settled in
// the kernel per site since the last call, and calls fn with each. Handles
// whose stack was not a site Go knew are only in Counters().Paired.
func (t *Tracer) TakeSettled(fn func(img, site, n uint64)) error {
	if t.maps.Settled == nil {
		return nil
	}
	var keys []bpf.LeaktraceLtProcPc
	var k bpf.LeaktraceLtProcPc
	it := t.maps.Settled.Iterate()
	var per []uint64
	for it.Next(&k, &per) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading settled counts: %w", err)
	}
	for _, k := range keys {
		// Read and delete at once: a count made in between is not lost.
		if err := t.maps.Settled.LookupAndDelete(&k, &per); err != nil {
			continue // evicted meanwhile
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		if n > 0 {
			fn(k.Img, k.Pc, n)
		}
	}
	return nil
}

// ForgetSites removes sites of image img from the kernel's table: their
// next record carries their pcs again. Go calls it before it forgets them.
func (t *Tracer) ForgetSites(img uint64, sites []uint64) error {
	if len(sites) == 0 || t.maps.Sites == nil {
		return nil
	}
	keys := make([]bpf.LeaktraceLtProcPc, len(sites))
	for i, s := range sites {
		keys[i] = bpf.LeaktraceLtProcPc{Img: img, Pc: s}
	}
	// Keys the LRU has already evicted make the batch stop early: delete
	// one by one, ignoring those.
	for i := range keys {
		if err := t.maps.Sites.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forgetting sites of image %#x: %w", img, err)
		}
	}
	return nil
}
