//go:build linux

// Command guest is the init (PID 1) of vmtest's virtual machines: it mounts
// what leaktrace needs, runs the smoke checks against the static leaktrace
// binary and test programs in the initramfs, reports each on the second
// serial port (vmtest/result) and powers the machine off.
//
// Outside a VM (pid != 1) it runs the same checks and prints the protocol
// on stdout, which is how the checks are debugged on a host:
//
//	CGO_ENABLED=0 go build -o /tmp/guest ./vmtest/guest && sudo /tmp/guest -bin DIR
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/vmtest/result"
)

func main() {
	binDir := flag.String("bin", "/bin", "directory holding leaktrace and leaky")
	expect := flag.String("expect", "", "load or refuse (default: vmtest.expect= on the kernel command line, else load)")
	flag.Parse()

	pid1 := os.Getpid() == 1
	out := io.Writer(os.Stdout)
	if pid1 {
		if err := setup(); err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: setup: %v\n", err)
		}
		out = resultPort()
	}
	g := &guest{out: out, bin: *binDir, expect: *expect}
	if g.expect == "" {
		g.expect = cmdlineValue("vmtest.expect")
	}
	g.main()
	if pid1 {
		unix.Sync()
		// Returning from PID 1 panics the kernel: power off instead, which
		// ends QEMU (-no-reboot).
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: power off: %v\n", err)
		}
		select {}
	}
}

// setup mounts the pseudo file systems a fresh host has and brings up lo.
// tracefs and debugfs are left out on purpose: a fresh host lacks them, and
// leaktrace must cope (mount tracefs itself or do without).
func setup() error {
	mounts := []struct{ fstype, dir string }{
		{"proc", "/proc"},
		{"sysfs", "/sys"},
		{"devtmpfs", "/dev"},
		{"tmpfs", "/tmp"},
		{"tmpfs", "/run"},
		{"cgroup2", "/sys/fs/cgroup"},
		{"bpf", "/sys/fs/bpf"},
	}
	var errs []string
	for _, m := range mounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			errs = append(errs, fmt.Sprintf("mount %s on %s: %v", m.fstype, m.dir, err))
		}
	}
	if err := loopbackUp(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// loopbackUp sets lo up: the agent serves its metrics on 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo up: %w", err)
	}
	return nil
}

// resultPort is the second serial port, kept apart from the kernel's console
// (ttyS0) so that kernel messages never split a result line. It falls back to
// the console.
func resultPort() io.Writer {
	for _, p := range []string{"/dev/ttyS1", "/dev/console"} {
		f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		// Raw output: no \n to \r\n, and writes of any size pass through.
		if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			t.Oflag &^= unix.OPOST
			unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
		}
		return f
	}
	return os.Stdout
}

// cmdlineValue returns KEY's value on the kernel command line ("" if absent).
func cmdlineValue(key string) string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

type guest struct {
	out    io.Writer
	bin    string          // directory of leaktrace and the test programs
	expect string          // "refuse": leaktrace must refuse this kernel
	shown  map[string]bool // failures whose stderr was passed on, by first line
}

func (g *guest) send(m result.Message) {
	fmt.Fprintln(g.out, result.Format(m))
	if g.out != io.Writer(os.Stdout) && m.Check != nil {
		// The console log reads in order with the kernel's messages.
		fmt.Fprintf(os.Stderr, "vmtest: %s %s %s\n", m.Check.Name, m.Check.Status, m.Check.Detail)
	}
}

func (g *guest) main() {
	var uts unix.Utsname
	unix.Uname(&uts)
	g.send(result.Message{Kind: result.KindHello, Release: unix.ByteSliceToString(uts.Release[:]), Uptime: uptime()})
	if cmdlineValue("vmtest.crash") == "1" {
		// vmtest -crash: the kernel crashes on purpose, to check how a crash
		// is told apart from a failed check.
		os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0)
	}
	for _, c := range g.checks() {
		start := time.Now()
		chk := func() (chk result.Check) {
			// A bug in a check reports as its failure, never as a dead init.
			defer func() {
				if r := recover(); r != nil {
					chk = fail("guest panicked: %v", r)
				}
			}()
			return c.run()
		}()
		chk.Name = c.name
		chk.Seconds = time.Since(start).Seconds()
		g.send(result.Message{Kind: result.KindCheck, Check: &chk})
	}
	g.send(result.Message{Kind: result.KindDone})
}

func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	var up float64
	fmt.Sscanf(string(b), "%f", &up)
	return up
}

func pass(format string, a ...any) result.Check {
	return result.Check{Status: result.Pass, Detail: fmt.Sprintf(format, a...)}
}

func fail(format string, a ...any) result.Check {
	return result.Check{Status: result.Fail, Detail: fmt.Sprintf(format, a...)}
}

func skip(format string, a ...any) result.Check {
	return result.Check{Status: result.Skip, Detail: fmt.Sprintf(format, a...)}
}
