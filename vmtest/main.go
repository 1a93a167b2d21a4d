// Command vmtest boots leaktrace under real distribution kernels and runs a
// smoke test in each: `make vmtest`, or
//
//	go run ./vmtest [-kernels 6.1,7.3] [-j N] [-timeout 4m]
//
// Debian's cloud kernels (pinned in kernels.go) are fetched once through a
// private apt configuration into -cache and booted with QEMU under TCG (no KVM
// needed), one vCPU, with an initramfs holding a static Go init
// (vmtest/guest), the static leaktrace binary and the leaky C test program.
// In each VM: `run` of a leaky and a balanced program at the default and
// extreme --stack-bytes, `attach` to a live leaking process, the agent, and
// the verifier figures when the binary offers them; on a kernel below the
// supported floor, a clean refusal. A VM that crashed or gave no result is
// booted once more; a kernel crash is reported apart from a failed check.
// Exits 1 when any kernel's row is not PASS.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/leaktrace/leaktrace/vmtest/result"
)

func main() {
	os.Exit(run())
}

type options struct {
	kernels   string
	cache     string
	mirror    string
	leaktrace string
	jsonPath  string
	jobs      int
	timeout   time.Duration
	memMB     int
	keep      bool
	fetchOnly bool
	crash     bool
}

func run() int {
	var o options
	flag.StringVar(&o.kernels, "kernels", "all", "comma-separated kernels of the matrix to boot (names as in the table)")
	flag.StringVar(&o.cache, "cache", "/var/cache/leaktrace-vmtest", "where fetched kernels and the private apt state are kept")
	flag.StringVar(&o.mirror, "mirror", "", "Debian archive URI (default: the one the host's apt sources use)")
	flag.StringVar(&o.leaktrace, "leaktrace", "", "a static leaktrace binary to test (default: build ./cmd/leaktrace with CGO_ENABLED=0)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.IntVar(&o.jobs, "j", 2, "VMs run at once (each uses one host core under TCG)")
	flag.DurationVar(&o.timeout, "timeout", 4*time.Minute, "hard limit per VM")
	flag.IntVar(&o.memMB, "m", 1024, "guest memory in MiB")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (initramfs, console logs)")
	flag.BoolVar(&o.fetchOnly, "fetch-only", false, "fetch the kernels into -cache and stop")
	flag.BoolVar(&o.crash, "crash", false, "crash each kernel on purpose once init runs (checks that a crash is reported as CRASH, retried once)")
	flag.Parse()
	if flag.NArg() > 0 || o.jobs < 1 || o.timeout <= 0 || o.memMB < 256 {
		fmt.Fprintln(os.Stderr, "vmtest: bad arguments (see go run ./vmtest -h)")
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	outcomes, err := matrixRun(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		return 2
	}
	if outcomes == nil { // -fetch-only
		return 0
	}
	printTable(os.Stdout, outcomes)
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, outcomes); err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
			return 2
		}
	}
	bad := 0
	for _, oc := range outcomes {
		if oc.Result != Pass {
			bad++
		}
	}
	if bad > 0 {
		fmt.Printf("vmtest: %d of %d kernels not PASS\n", bad, len(outcomes))
		return 1
	}
	fmt.Printf("vmtest: all %d kernels PASS\n", len(outcomes))
	return 0
}

func matrixRun(ctx context.Context, o options) ([]outcome, error) {
	ks, err := selectKernels(o.kernels)
	if err != nil {
		return nil, err
	}
	for _, tool := range []string{"qemu-system-x86_64", "gcc", "go", "apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: apt-get install -y qemu-system-x86 gcc libc6-dev (and Go)", tool)
		}
	}
	store := &kernelStore{dir: o.cache, mirror: o.mirror, log: os.Stderr}
	if err := os.MkdirAll(o.cache, 0o755); err != nil {
		return nil, fmt.Errorf("cache %s: %w (run as root, or give -cache DIR)", o.cache, err)
	}
	if err := store.ensure(ctx, ks); err != nil {
		return nil, err
	}
	if o.fetchOnly {
		return nil, nil
	}
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "leaktrace-vmtest-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "vmtest: work directory %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	t0 := time.Now()
	g, err := buildGuest(ctx, repo, work, o.leaktrace)
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(work, "initramfs.cpio.gz")
	if err := writeInitramfs(initrd, g); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "vmtest: guest built in %.1f s; booting %d kernel(s), %d at a time\n", time.Since(t0).Seconds(), len(ks), o.jobs)

	vm := vmConfig{qemu: "qemu-system-x86_64", memMB: o.memMB, timeout: o.timeout, crash: o.crash}
	outcomes := make([]outcome, len(ks))
	sem := make(chan struct{}, o.jobs)
	var wg sync.WaitGroup
	var printMu sync.Mutex
	for i, k := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			say := func(format string, a ...any) {
				printMu.Lock()
				defer printMu.Unlock()
				fmt.Fprintf(os.Stderr, "vmtest %-5s "+format+"\n", append([]any{k.Name}, a...)...)
			}
			outcomes[i] = bootKernel(ctx, vm, k, store.vmlinuzPath(k), initrd, work, say)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	return outcomes, nil
}

// bootKernel boots k, and once more when the first boot crashed.
func bootKernel(ctx context.Context, vm vmConfig, k Kernel, vmlinuz, initrd, work string, say func(string, ...any)) outcome {
	var attempts []attempt
	for n := 1; n <= 2; n++ {
		dir := filepath.Join(work, fmt.Sprintf("%s-boot%d", k.Name, n))
		os.MkdirAll(dir, 0o755)
		say("boot %d: %s", n, k)
		a := boot(ctx, vm, k, vmlinuz, initrd, dir, func(m result.Message) {
			switch m.Kind {
			case result.KindHello:
				say("init running on %s, %.1f s after the kernel started", m.Release, m.Uptime)
			case result.KindCheck:
				say("%-22s %-4s %5.1fs  %s", m.Check.Name, m.Check.Status, m.Check.Seconds, m.Check.Detail)
			case result.KindLog:
				say("| %s", m.Text)
			}
		})
		attempts = append(attempts, a)
		if !a.crashed() || ctx.Err() != nil {
			break
		}
		say("boot %d: %s; the console's last lines:", n, crashReason(a))
		printConsoleTail(say, a.Console)
	}
	o := judge(k, attempts)
	say("%s in %.0f s: %s", o.Result, o.last().Seconds, o.Reason)
	return o
}

// printConsoleTail shows the end of a crashed kernel's console: the oops.
func printConsoleTail(say func(string, ...any), path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	for _, l := range lines {
		say("console: %s", strings.TrimRight(l, "\r"))
	}
}

func printTable(w io.Writer, outcomes []outcome) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tRELEASE\tBOOT S\tVM S\tRESULT\tREASON")
	for _, o := range outcomes {
		a := o.last()
		release := a.Release
		if release == "" {
			release = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.0f\t%s\t%s\n", o.Kernel, release, a.Boot, a.Seconds, o.Result, o.Reason)
	}
	tw.Flush()
}

func writeJSON(path string, outcomes []outcome) error {
	b, err := json.MarshalIndent(outcomes, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// repoRoot is the directory of the leaktrace module (go run ./vmtest runs
// from anywhere inside it).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/leaktrace/leaktrace\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run vmtest inside the leaktrace repository")
		}
		dir = parent
	}
}
