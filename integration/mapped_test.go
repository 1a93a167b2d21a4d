package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/report"
)

type span struct{ lo, hi uint64 }

// mapTruth is what mapgrow says it left mapped, and the kernel's
// /proc/self/maps as it was then.
type mapTruth struct {
	regions []span
	heap    span // the break before and after grow_heap
	commit  span // what commit_reserved made read-write
	maps    []span
	heapVMA span
}

func readMapTruth(t *testing.T, path string) mapTruth {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading ground truth: %v", err)
	}
	defer f.Close()
	var tr mapTruth
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "region", "heap", "commit":
			lo, err1 := strconv.ParseUint(fields[1], 10, 64)
			hi, err2 := strconv.ParseUint(fields[2], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("bad truth line %q", sc.Text())
			}
			switch fields[0] {
			case "heap":
				tr.heap = span{lo, hi}
			case "commit":
				tr.commit = span{lo, hi}
			default:
				tr.regions = append(tr.regions, span{lo, hi})
			}
		case "maps":
			a, b, ok := strings.Cut(fields[1], "-")
			lo, err1 := strconv.ParseUint(a, 16, 64)
			hi, err2 := strconv.ParseUint(b, 16, 64)
			if !ok || err1 != nil || err2 != nil {
				t.Fatalf("bad maps line %q", sc.Text())
			}
			tr.maps = append(tr.maps, span{lo, hi})
			if fields[len(fields)-1] == "[heap]" {
				tr.heapVMA = span{lo, hi}
			}
		}
	}
	return tr
}

// inMaps: [lo, hi) is mapped, as /proc/PID/maps says (adjacent anonymous
// ranges are merged there, so a range may span several lines).
func (tr mapTruth) inMaps(s span) bool {
	at := s.lo
	for at < s.hi {
		found := false
		for _, m := range tr.maps {
			if m.lo <= at && at < m.hi {
				at, found = m.hi, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func pageUp(a uint64) uint64 { return (a + 4095) &^ 4095 }

func mappedSite(r *report.Report, fn string) (report.MappedSite, bool) {
	if r.Mapped == nil {
		return report.MappedSite{}, false
	}
	for _, s := range r.Mapped.Sites {
		if s.Headline.Function == fn {
			return s, true
		}
	}
	return report.MappedSite{}, false
}

// TestRunMappedPairs: an mmap and the munmap of exactly its range settle in
// the kernel (neither record sent), and nothing of them is left counted.
func TestRunMappedPairs(t *testing.T) {
	requireRoot(t)
	const rounds = 5000
	out := filepath.Join(t.TempDir(), "churn.out")
	r, _, code := runTraced(t, nil, filepath.Join(binaries(t), "churn"), "-m", "mmap", "-n", strconv.Itoa(rounds), "-o", out)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !r.Complete {
		t.Errorf("report incomplete: %v", r.Notes)
	}
	if r.Events.PairedInKernel < rounds*8/10 {
		t.Errorf("%d mappings settled in the kernel, want most of the %d made and unmapped", r.Events.PairedInKernel, rounds)
	}
	if s, ok := mappedSite(r, "churn"); ok {
		t.Errorf("churn's mmap site left %d bytes in %d mappings counted, want none", s.Bytes, s.Mappings)
	}
	t.Logf("%d of %d settled in the kernel, %d records received", r.Events.PairedInKernel, rounds, r.Events.Received)
}

// TestRunMappedBytes: the bytes `run` reports left mapped by each site are
// the ranges the program left, and /proc/PID/maps shows each of them mapped.
func TestRunMappedBytes(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	tmp := t.TempDir()
	truthPath := filepath.Join(tmp, "truth")
	jsonPath := filepath.Join(tmp, "report.json")
	cmd := exec.Command(filepath.Join(dir, "leaktrace"), "run", "--json", jsonPath, "--", filepath.Join(dir, "mapgrow"))
	cmd.Env = append(os.Environ(), "LEAKTRACE_TRUTH="+truthPath)
	out, err := cmd.CombinedOutput()
	t.Logf("leaktrace output:\n%s", out)
	if err != nil {
		t.Fatalf("leaktrace run: %v", err)
	}
	r := readReport(t, jsonPath)
	tr := readMapTruth(t, truthPath)
	if len(tr.regions) != 5 || tr.heap.hi <= tr.heap.lo || tr.heapVMA.hi == 0 {
		t.Fatalf("ground truth incomplete: %+v", tr)
	}

	var want uint64
	for _, s := range tr.regions {
		if !tr.inMaps(s) {
			t.Errorf("region %#x-%#x is not in /proc/PID/maps", s.lo, s.hi)
		}
		want += s.hi - s.lo
	}
	site, ok := mappedSite(r, "map_region")
	if !ok {
		t.Fatalf("no mapped site names map_region: %+v", r.Mapped)
	}
	// Ranges side by side are one (as /proc/PID/maps shows them): at most
	// as many as the program left, at least the two its hole made.
	if site.Bytes != want || site.Mappings > len(tr.regions) || site.Mappings < 2 {
		t.Errorf("map_region: %d bytes in %d ranges, want %d in 2 to %d (what /proc/PID/maps holds of them)", site.Bytes, site.Mappings, want, len(tr.regions))
	}
	if !report.HasFunction(site.Stack, "main") || len(site.Targets) != 1 || site.Targets[0] != "[anon]" {
		t.Errorf("map_region's stack or targets: %+v", site)
	}

	heap := span{pageUp(tr.heap.lo), pageUp(tr.heap.hi)}
	if heap.lo < tr.heapVMA.lo || heap.hi > tr.heapVMA.hi {
		t.Errorf("brk growth %#x-%#x is not inside [heap] %#x-%#x", heap.lo, heap.hi, tr.heapVMA.lo, tr.heapVMA.hi)
	}
	hs, ok := mappedSite(r, "grow_heap")
	if !ok {
		t.Fatalf("no mapped site names grow_heap: %+v", r.Mapped)
	}
	if hs.Bytes != heap.hi-heap.lo || len(hs.Targets) != 1 || hs.Targets[0] != "[heap]" {
		t.Errorf("grow_heap: %d bytes %v, want %d [heap]", hs.Bytes, hs.Targets, heap.hi-heap.lo)
	}
	// 2 MiB of the 8 MiB reserved were made read-write by commit_reserved:
	// they count there; the reservation itself is no memory.
	cs, ok := mappedSite(r, "commit_reserved")
	if !ok || cs.Bytes != tr.commit.hi-tr.commit.lo || !tr.inMaps(tr.commit) {
		t.Errorf("commit_reserved: %+v (found %v), want %d bytes", cs, ok, tr.commit.hi-tr.commit.lo)
	}
	if _, ok := mappedSite(r, "reserve"); ok {
		t.Errorf("the PROT_NONE reservation is counted as memory: %+v", r.Mapped.Sites)
	}
	if len(r.Leaks) != 0 && r.Budget != nil {
		t.Errorf("mappings counted as leaks: %+v", r.Budget)
	}
}

// TestRunMappedBudget: --budget mapped=SIZE fails the run with the budget's
// exit code (99) when more is left mapped, and passes it otherwise.
func TestRunMappedBudget(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	for _, tc := range []struct {
		budget string
		want   int
	}{{"mapped=1MiB", 99}, {"mapped=1GiB", 0}, {"0,mapped=1GiB", 0}} {
		t.Run(tc.budget, func(t *testing.T) {
			out, err := exec.Command(filepath.Join(dir, "leaktrace"), "run", "--budget", tc.budget, "--", filepath.Join(dir, "mapgrow")).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Errorf("exit %d, want %d\n%s", code, tc.want, out)
			}
			if tc.want == 99 && !strings.Contains(string(out), "mapped=1.0 MiB: exceeded") {
				t.Errorf("the verdict does not say what was exceeded:\n%s", out)
			}
		})
	}
}

// TestRunMappedPython: a Python program that keeps mapping memory at one
// line has that line as its top mapped site, under every interpreter.
func TestRunMappedPython(t *testing.T) {
	requireRoot(t)
	binaries(t)
	script := filepath.Join(repoRoot(), "testdata", "mapgrow", "mapgrow.py")
	markers := leakMarkers(t, script)
	if markers["grow"] == 0 || markers["buffers"] == 0 {
		t.Fatalf("mapgrow.py lacks its markers: %v", markers)
	}
	for name, py := range pythons(t) {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			jsonPath := filepath.Join(tmp, "report.json")
			out, err := exec.Command(filepath.Join(buildDir, "leaktrace"), "run", "--json", jsonPath, "--", py, script).CombinedOutput()
			t.Logf("leaktrace output:\n%s", out)
			if err != nil {
				t.Fatalf("leaktrace run: %v", err)
			}
			r := readReport(t, jsonPath)
			if r.Mapped == nil || len(r.Mapped.Sites) == 0 {
				t.Fatal("no mapped memory reported")
			}
			top := r.Mapped.Sites[0]
			if h := top.Headline; h.Module != "python" || filepath.Base(h.File) != "mapgrow.py" || h.Line != markers["grow"] || h.Function != "grow" {
				t.Errorf("top mapped site is %+v (%d bytes), want mapgrow.py:%d grow", h, top.Bytes, markers["grow"])
			}
			if top.Bytes < 64<<20 {
				t.Errorf("top site has %d bytes, want at least the 64 MiB the script keeps", top.Bytes)
			}
			found := false
			for _, s := range r.Mapped.Sites {
				if s.Headline.Module == "python" && s.Headline.Line == markers["buffers"] {
					found = s.Bytes >= 32<<20
				}
			}
			if !found {
				t.Errorf("no mapped site of at least 32 MiB at mapgrow.py:%d (bytearrays malloc maps)", markers["buffers"])
			}
		})
	}
}

// TestAttachMappedGrowth: attach reports what a live process mapped since
// the attach, by site, as growth; what it mapped before is not seen.
func TestAttachMappedGrowth(t *testing.T) {
	requireRoot(t)
	dir := binaries(t)
	// 256 KiB every 20 ms: above malloc's mmap threshold, one mapping each.
	prog := exec.Command(filepath.Join(dir, "memgrow"), "256", "20", "256")
	if err := prog.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Process.Kill(); prog.Wait() })
	time.Sleep(300 * time.Millisecond) // some mapped before the attach: not seen
	jsonPath := filepath.Join(t.TempDir(), "attach.json")
	out, err := exec.Command(filepath.Join(dir, "leaktrace"), "attach", "--duration", "1500ms", "--min-age", "0s",
		"--interval", "200ms", "--json", jsonPath, strconv.Itoa(prog.Process.Pid)).CombinedOutput()
	t.Logf("attach output:\n%s", out)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	r := readReport(t, jsonPath)
	site, ok := mappedSite(r, "grow")
	if !ok {
		t.Fatalf("no mapped site names grow: %+v", r.Mapped)
	}
	// glibc maps a 256 KiB block with its header: 65 pages.
	const chunk = 65 * 4096
	if site.Bytes < 10*chunk || site.Bytes%chunk != 0 || site.Mappings < 1 || site.Mappings > int(site.Bytes/chunk) {
		t.Errorf("grow: %d bytes in %d ranges, want many whole %d-byte blocks", site.Bytes, site.Mappings, chunk)
	}
	if site.GrowthBytes != site.Bytes {
		t.Errorf("grow: growth %d, want all of its %d bytes (mapped since the attach)", site.GrowthBytes, site.Bytes)
	}
	// The kernel's truth: the process maps at least this much more than
	// the blocks before the attach (VmSize counts every mapping).
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", prog.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var vmKiB uint64
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &vmKiB)
		}
	}
	if vmKiB*1024 < site.Bytes {
		t.Errorf("grow: %d bytes mapped, more than the process's VmSize %d KiB", site.Bytes, vmKiB)
	}
}

// TestAgentSettlesMappingsAtExit: the agent keeps live processes only, so
// what a short-lived process still had mapped as it exited (a program's
// locale files, its libraries' segments) settles in the kernel, counted at
// its site, instead of a record each; and the dynamic loader's mprotects
// send only the mappings they touch. Real programs: cat, under a UTF-8
// locale that maps a dozen files.
func TestAgentSettlesMappingsAtExit(t *testing.T) {
	requireRoot(t)
	base := startAgent(t, "--comm", "cat", "--interval", "1s")
	counts := func() (received, settled float64) {
		mfs := scrape(t, base)
		return sum(series(mfs, "leaktrace_events_received_total", nil)), sum(series(mfs, "leaktrace_handles_settled_in_kernel_total", nil))
	}
	cat := func() {
		cmd := exec.Command("cat", "/etc/hostname")
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cat: %v\n%s", err, out)
		}
	}
	// quiet waits until the agent has read what the runs sent.
	quiet := func() (received, settled float64) {
		last := -1.0
		waitFor(t, 30*time.Second, "the agent to read the runs' records", func() bool {
			received, settled = counts()
			done := received > 0 && received == last
			last = received
			if !done {
				time.Sleep(400 * time.Millisecond)
			}
			return done
		})
		return
	}
	// The first runs teach the agent cat's sites (sent whole, never
	// parked); the later ones send each as a hash.
	cat()
	cat()
	r0, s0 := quiet()
	const runs = 10
	for range runs {
		cat()
	}
	r1, s1 := quiet()
	perRun, settledPerRun := (r1-r0)/runs, (s1-s0)/runs
	t.Logf("%d runs of cat: %.1f records and %.1f handles settled in the kernel per run", runs, perRun, settledPerRun)
	// cat maps 13 locale files and its libraries' segments and holds
	// them to its end: each was a record before (about 28 a run).
	if settledPerRun < 10 {
		t.Errorf("%.1f handles settled per run of cat, want its mappings held to its end (10 or more)", settledPerRun)
	}
	if perRun > 25 {
		t.Errorf("%.1f records per run of cat, want its mappings held to its end settled in the kernel", perRun)
	}
}
