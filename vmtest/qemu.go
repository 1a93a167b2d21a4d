package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/leaktrace/leaktrace/vmtest/result"
)

// attempt is one boot of one kernel.
type attempt struct {
	Release  string         // uname -r, as init saw it
	Boot     float64        // seconds from QEMU's start to init's first message
	Seconds  float64        // the whole VM, until it powered off or was killed
	Checks   []result.Check // in the order they ran
	Logs     []string       // lines the guest passed on (verifier figures)
	Done     bool           // init ran every check
	Crash    string         // the kernel's panic/oops line, if any
	InitDied string         // the guest init's own fatal error (a harness bug, not the kernel's)
	NoResult string         // why there was no complete result (timeout, early exit)
	Console  string         // the kernel console's log file
}

// vmConfig is how every VM is run.
type vmConfig struct {
	qemu    string
	memMB   int
	timeout time.Duration // hard limit per VM
	crash   bool          // crash every kernel on purpose (sysrq c) after init starts
}

// boot runs k's kernel with the initramfs until the guest powers off, the
// kernel panics (panic=-1 with -no-reboot ends QEMU) or the timeout kills it.
// progress receives each protocol message as it arrives.
func boot(ctx context.Context, vm vmConfig, k Kernel, vmlinuz, initrd, logDir string, progress func(result.Message)) attempt {
	a := attempt{Console: filepath.Join(logDir, "console.log")}
	expect := "load"
	if !k.Supported {
		expect = "refuse"
	}
	cmdline := "console=ttyS0 oops=panic panic=-1 random.trust_cpu=on vmtest.expect=" + expect
	if vm.crash {
		cmdline += " vmtest.crash=1"
	}
	ctx, cancel := context.WithTimeout(ctx, vm.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, vm.qemu,
		"-accel", "tcg", "-cpu", "max",
		// One vCPU: with two, attaching oopsed under TCG (issue 11).
		"-smp", "1", "-m", fmt.Sprint(vm.memMB),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", cmdline,
		// ttyS0: the kernel's console, to a file; ttyS1: the guest's results.
		"-chardev", "file,id=console,path="+a.Console, "-serial", "chardev:console",
		"-chardev", "stdio,id=results,signal=off", "-serial", "chardev:results",
	)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		a.NoResult = err.Error()
		return a
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		a.NoResult = fmt.Sprintf("starting QEMU: %v", err)
		return a
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := result.Parse(sc.Text())
		if !ok {
			continue
		}
		switch m.Kind {
		case result.KindHello:
			a.Release, a.Boot = m.Release, time.Since(start).Seconds()
		case result.KindCheck:
			a.Checks = append(a.Checks, *m.Check)
		case result.KindLog:
			a.Logs = append(a.Logs, m.Text)
		case result.KindDone:
			a.Done = true
		}
		progress(m)
	}
	werr := cmd.Wait()
	a.Seconds = time.Since(start).Seconds()
	if b, err := os.ReadFile(a.Console); err == nil {
		a.Crash, a.InitDied = crashLine(string(b)), initDeath(string(b))
	}
	switch {
	case a.Done:
	case ctx.Err() == context.DeadlineExceeded:
		a.NoResult = fmt.Sprintf("no result within the %s limit%s", vm.timeout, lastCheck(a))
	case werr != nil && a.Crash == "":
		a.NoResult = fmt.Sprintf("QEMU failed: %v: %s", werr, strings.TrimSpace(stderr.String()))
	default:
		a.NoResult = "the VM stopped before the checks ended" + lastCheck(a)
	}
	return a
}

func lastCheck(a attempt) string {
	if len(a.Checks) == 0 {
		if a.Release == "" {
			return " (init never started)"
		}
		return " (during the first check)"
	}
	return " (after " + a.Checks[len(a.Checks)-1].Name + ")"
}

var (
	// What the kernel prints when it dies or oopses (oops=panic makes every
	// oops fatal), on a line of its own (printk's timestamp first): the
	// guest's own lines on the console may quote anything.
	crashMarker = regexp.MustCompile(`^\[\s*\d+\.\d+\] (Kernel panic - not syncing.*|Oops: .*|BUG: .*|kernel BUG at .*|general protection fault.*)`)
	// The panic that follows when init itself exits: not the kernel's fault
	// unless an oops came first.
	killedInit = "Attempted to kill init"
	// How a Go program (the guest init) says why it died.
	goFatal = regexp.MustCompile(`^(panic: |fatal error: )`)
)

// crashLine returns the first line of a console log that shows a kernel
// crash, or "". The panic of an init that exited by itself is not one.
func crashLine(console string) string {
	for _, line := range strings.Split(console, "\n") {
		if m := crashMarker.FindStringSubmatch(line); m != nil && !strings.Contains(m[1], killedInit) {
			return strings.TrimSpace(m[1])
		}
	}
	return ""
}

// initDeath says why the guest init exited ("" if it did not): Go's own
// fatal line when it printed one.
func initDeath(console string) string {
	if !strings.Contains(console, killedInit) {
		return ""
	}
	for _, line := range strings.Split(console, "\n") {
		if goFatal.MatchString(line) {
			return strings.TrimSpace(line)
		}
	}
	return "init exited"
}

// Results of one kernel, as the table shows them.
const (
	Pass  = "PASS"
	Fail  = "FAIL"  // the kernel ran the checks, and one failed
	Crash = "CRASH" // the kernel oopsed or panicked, or gave no result
)

// outcome is a kernel's row.
type outcome struct {
	Kernel   Kernel
	Result   string
	Reason   string
	Attempts []attempt
}

func (o outcome) last() attempt { return o.Attempts[len(o.Attempts)-1] }

// crashed says whether an attempt is worth a second boot: a kernel crash or
// no result is told apart from a check that failed.
func (a attempt) crashed() bool { return a.Crash != "" || !a.Done && a.InitDied == "" }

// judge makes a kernel's row from its attempts (one, or two when the first
// crashed).
func judge(k Kernel, attempts []attempt) outcome {
	o := outcome{Kernel: k, Attempts: attempts}
	a := o.last()
	var retried string
	if len(attempts) > 1 {
		retried = fmt.Sprintf(" (retried: boot 1 %s)", crashReason(attempts[0]))
	}
	if a.crashed() {
		o.Result, o.Reason = Crash, crashReason(a)+retried
		return o
	}
	if a.InitDied != "" {
		o.Result, o.Reason = Fail, "the guest init died: "+a.InitDied+lastCheck(a)+retried
		return o
	}
	var failed []result.Check
	passed, skipped := 0, 0
	for _, c := range a.Checks {
		switch c.Status {
		case result.Fail:
			failed = append(failed, c)
		case result.Pass:
			passed++
		case result.Skip:
			skipped++
		}
	}
	switch {
	case len(failed) > 0:
		o.Result = Fail
		o.Reason = failed[0].Name + ": " + failed[0].Detail
		if len(failed) > 1 {
			var names []string
			for _, c := range failed[1:] {
				names = append(names, c.Name)
			}
			o.Reason += fmt.Sprintf(" (also failed: %s)", strings.Join(names, ", "))
		}
	case passed == 0:
		o.Result, o.Reason = Fail, "no check passed"
	case !k.Supported:
		o.Result, o.Reason = Pass, "refused as it must: "+a.Checks[0].Detail
	default:
		o.Result = Pass
		o.Reason = fmt.Sprintf("%d checks passed", passed)
		if skipped > 0 {
			o.Reason += fmt.Sprintf(", %d skipped", skipped)
		}
	}
	o.Reason += retried
	return o
}

func crashReason(a attempt) string {
	switch {
	case a.Crash != "":
		return "kernel crash: " + a.Crash + lastCheck(a)
	case a.NoResult != "":
		return a.NoResult
	}
	return "no result"
}
