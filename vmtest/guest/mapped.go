//go:build linux

package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/vmtest/result"
)

// mapped runs mapgrow under `run`: the bytes its two sites left mapped must
// be what it says it left (regions after munmaps, the heap's growth by brk),
// each region listed in its /proc/self/maps; and --budget mapped= must fail
// the run with 99 when exceeded.
func (g *guest) mapped() result.Check {
	dir, err := os.MkdirTemp("", "mapped-")
	if err != nil {
		return fail("temp dir: %v", err)
	}
	defer os.RemoveAll(dir)
	jsonPath, truthPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "truth")
	inv := g.leaktrace(runTimeout, []string{"LEAKTRACE_TRUTH=" + truthPath}, "run", "--json", jsonPath,
		"--budget", "mapped=1MiB", "--", filepath.Join(g.bin, "mapgrow"))
	if inv.code != 99 {
		return g.failed(inv, "leaktrace run --budget mapped=1MiB mapgrow (want exit 99)")
	}
	r, err := readReport(jsonPath)
	if err != nil {
		return fail("%v", err)
	}
	f, err := os.Open(truthPath)
	if err != nil {
		return fail("mapgrow's truth: %v", err)
	}
	defer f.Close()
	type span struct{ lo, hi uint64 }
	var regions, maps []span
	var heap, commit span
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) >= 3 && (fs[0] == "region" || fs[0] == "heap" || fs[0] == "commit"):
			lo, _ := strconv.ParseUint(fs[1], 10, 64)
			hi, _ := strconv.ParseUint(fs[2], 10, 64)
			switch fs[0] {
			case "heap":
				heap = span{lo, hi}
			case "commit":
				commit = span{lo, hi}
			default:
				regions = append(regions, span{lo, hi})
			}
		case len(fs) >= 2 && fs[0] == "maps":
			a, b, _ := strings.Cut(fs[1], "-")
			lo, _ := strconv.ParseUint(a, 16, 64)
			hi, _ := strconv.ParseUint(b, 16, 64)
			maps = append(maps, span{lo, hi})
		}
	}
	var want uint64
	for _, s := range regions {
		want += s.hi - s.lo
		for at := s.lo; at < s.hi; {
			next := at
			for _, m := range maps {
				if m.lo <= at && at < m.hi {
					next = m.hi
				}
			}
			if next == at {
				return fail("region %#x-%#x is not in /proc/self/maps", s.lo, s.hi)
			}
			at = next
		}
	}
	pageUp := func(a uint64) uint64 { return (a + 4095) &^ 4095 }
	wantHeap := pageUp(heap.hi) - pageUp(heap.lo)
	var gotRegion, gotHeap, gotCommit uint64
	var found int
	if r.Mapped != nil {
		// Static: libc's frames are the program's module, so the headline
		// may be libc's wrapper; the stack names the caller.
		for _, s := range r.Mapped.Sites {
			switch {
			case report.HasFunction(s.Stack, "map_region"):
				gotRegion, found = s.Bytes, found+1
			case report.HasFunction(s.Stack, "grow_heap"):
				gotHeap, found = s.Bytes, found+1
			case report.HasFunction(s.Stack, "commit_reserved"):
				gotCommit, found = s.Bytes, found+1
			case report.HasFunction(s.Stack, "reserve"):
				return fail("the PROT_NONE reservation is counted: %d bytes", s.Bytes)
			}
		}
	}
	if found != 3 || gotRegion != want || gotHeap != wantHeap || wantHeap == 0 || gotCommit != commit.hi-commit.lo || gotCommit == 0 {
		return fail("mapped: map_region %d bytes (want %d), grow_heap %d (want %d), commit_reserved %d (want %d); sites found %d",
			gotRegion, want, gotHeap, wantHeap, gotCommit, commit.hi-commit.lo, found)
	}
	if r.Budget == nil || r.Budget.Mapped == nil || !r.Budget.Mapped.Exceeded {
		return fail("budget verdict %+v", r.Budget)
	}
	return pass("map_region %d bytes in %d ranges, grow_heap %d, commit_reserved %d (mprotect), as mapgrow left them; mapped=1MiB exceeded (exit 99)",
		gotRegion, len(regions), gotHeap, gotCommit)
}
