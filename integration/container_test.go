package integration

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// overlayRoot mounts a container's root as container runtimes do: the
// host's root as the read-only lower layer, a tmpfs upper layer holding
// bin (the image's own program) as /name, and returns the merged
// directory. Code in it is mapped from the layers' files, while its paths
// (under /proc/PID/root) stat as overlay files on another device.
func overlayRoot(t *testing.T, bin, name string) string {
	t.Helper()
	dir := t.TempDir()
	layers, merged := filepath.Join(dir, "layers"), filepath.Join(dir, "merged")
	for _, d := range []string{layers, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The upper layer on a file system of its own: overlayfs refuses an
	// upper directory inside its lower layer.
	if err := unix.Mount("tmpfs", layers, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(layers, unix.MNT_DETACH) })
	upper, work := filepath.Join(layers, "upper"), filepath.Join(layers, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, bin, filepath.Join(upper, name))
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir=/,upperdir="+upper+",workdir="+work); err != nil {
		t.Fatalf("mounting an overlay (the kernel needs overlayfs): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	return merged
}

// containerProgram is leaky-c-nofp in a container's root (overlayRoot), as
// /name: a name of its own, for the agent's --comm to follow no process of
// another test.
func containerProgram(t *testing.T) (name, root string) {
	t.Helper()
	requireRoot(t)
	name = "leaky-in-ct"
	return name, overlayRoot(t, filepath.Join(binaries(t), "leaky-c-nofp"), name)
}

// utilLinux is the path of a util-linux command that enters namespaces.
func utilLinux(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s (util-linux) is needed to run a program in a container's mount namespace", name)
	}
	return p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestContainerProcessesShareFileRules: a container's program run again and
// again (exec probes, a job's scripts), each in its own mount namespace
// under an overlayfs root. The kernel keys rules by the layer's file it
// maps, which Go, opening the program under /proc/PID/root, knows by
// another name (the overlay's device): the kernel tells Go its name for
// the file with the first copy through it, and from then on new processes
// unwind with the rules taught for the layer's files, as on the host
// (TestNewProcessesShareFileRules). Each run lives 200 ms, time enough for
// Go to read its files through /proc/PID/root.
func TestContainerProcessesShareFileRules(t *testing.T) {
	name, root := containerProgram(t)
	unshare := utilLinux(t, "unshare")
	base := startAgent(t, "--comm", name, "--interval", "1s")
	counts := func() (copies, fromFile, all float64) {
		mfs := scrape(t, base)
		copies = sum(series(mfs, "leaktrace_stacks_sent_total", map[string]string{"form": "copy"}))
		all = sum(series(mfs, "leaktrace_stacks_sent_total", nil))
		fromFile = sum(series(mfs, "leaktrace_unwind_rules_from_file_total", nil))
		return
	}
	run := func() {
		cmd := exec.Command(unshare, "--mount", "--root="+root, "/"+name, "slow", "20")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	quiet := func(min float64) {
		last := -1.0
		waitFor(t, 30*time.Second, "the runs' stacks", func() bool {
			_, _, all := counts()
			done := all >= min && all == last
			last = all
			if !done {
				time.Sleep(400 * time.Millisecond)
			}
			return done
		})
	}
	run()
	quiet(1)
	c0, f0, a0 := counts()
	const runs = 8
	for range runs {
		run()
	}
	quiet(a0 + runs*20)
	c1, f1, a1 := counts()
	t.Logf("first run: %.0f stacks, %.0f copies; %d more runs: %.0f stacks, %.0f copies, %.0f rules from files", a0, c0, runs, a1-a0, c1-c0, f1-f0)
	// Keyed by the overlay's name, the rules were never found: each run
	// copied again (over 20 each).
	if c1-c0 > 3*runs {
		t.Errorf("%d later runs in the container sent %.0f stack copies: their files' rules were not found", runs, c1-c0)
	}
	if f1 == f0 {
		t.Error("no rule was found by file in the container")
	}
}

// TestContainerShortLivedProcesses: a program run again and again in a
// running container's namespace (an exec probe, `kubectl exec`), each run
// a few milliseconds, taking paths the container's long-lived process
// never does (leaky's balanced opens and closes): once the first runs have
// taught their paths (some first under the overlay's name for the program,
// then again under the kernel's), the next runs send no stack copies.
func TestContainerShortLivedProcesses(t *testing.T) {
	name, root := containerProgram(t)
	unshare, nsenter := utilLinux(t, "unshare"), utilLinux(t, "nsenter")
	base := startAgent(t, "--comm", name, "--interval", "1s")
	main := exec.Command(unshare, "--mount", "--root="+root, "/"+name, "slow", "3000")
	out, err := main.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := main.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { main.Process.Kill(); main.Wait() })
	if _, err := out.Read(make([]byte, 16)); err != nil { // "ready": running in its namespace
		t.Fatal(err)
	}
	pid := main.Process.Pid
	copies := func() (copies, all float64) {
		mfs := scrape(t, base)
		// Not the sites' hashes: the long-lived process sends one per 10 ms.
		copies = sum(series(mfs, "leaktrace_stacks_sent_total", map[string]string{"form": "copy"}))
		return copies, copies + sum(series(mfs, "leaktrace_stacks_sent_total", map[string]string{"form": "new"}))
	}
	probe := func() {
		cmd := exec.Command(nsenter, fmt.Sprintf("--mount=/proc/%d/ns/mnt", pid), fmt.Sprintf("--root=/proc/%d/root", pid),
			"/"+name, "balanced")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	quiet := func() float64 {
		last := -1.0
		var c float64
		waitFor(t, 30*time.Second, "the runs' stacks", func() bool {
			var all float64
			c, all = copies()
			done := all == last
			last = all
			if !done {
				time.Sleep(400 * time.Millisecond)
			}
			return done
		})
		return c
	}
	time.Sleep(time.Second) // the long-lived process's own first stacks
	// The first run teaches its paths, some under the overlay's name for
	// the program; the second what its copies renamed (FileID).
	probe()
	quiet()
	probe()
	c0 := quiet()
	const runs = 8
	for range runs {
		probe()
	}
	c1 := quiet()
	t.Logf("%d runs in the container's namespace after the first two: %.0f stack copies", runs, c1-c0)
	// Taught under the overlay's name, each run copied its paths again.
	if c1-c0 > 3*runs {
		t.Errorf("%d short-lived runs in the container sent %.0f stack copies: their files' rules were not found", runs, c1-c0)
	}
}
