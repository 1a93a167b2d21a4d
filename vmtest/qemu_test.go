package main

import (
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/vmtest/result"
)

func TestCrashLine(t *testing.T) {
	for _, tc := range []struct{ console, want string }{
		{"[    1.0] Run /init as init process\n[   80.0] reboot: Power down\n", ""},
		// The guest's own report on the console is not the kernel's.
		{"vmtest: agent fail the agent said BUG: x\n", ""},
		{"[   12.3] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[   12.3] Oops: 0000 [#1] SMP\n",
			"BUG: kernel NULL pointer dereference, address: 0000000000000008"},
		{"[    3.2] Kernel panic - not syncing: VFS: Unable to mount root fs\n",
			"Kernel panic - not syncing: VFS: Unable to mount root fs"},
		// init's own death is not a kernel crash...
		{"fatal error: all goroutines are asleep - deadlock!\n[  138.7] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000200\n", ""},
		// ...unless an oops killed it.
		{"[   12.3] Oops: general protection fault [#1]\n[   12.4] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n",
			"Oops: general protection fault [#1]"},
		{"[    5.0] general protection fault, probably for non-canonical address 0xdead: 0000 [#1]\r\n",
			"general protection fault, probably for non-canonical address 0xdead: 0000 [#1]"},
	} {
		if got := crashLine(tc.console); got != tc.want {
			t.Errorf("crashLine(%q) = %q, want %q", tc.console, got, tc.want)
		}
	}
}

func TestInitDeath(t *testing.T) {
	for _, tc := range []struct{ console, want string }{
		{"[   80.0] reboot: Power down\n", ""},
		{"fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\n[  138.7] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000200\n",
			"fatal error: all goroutines are asleep - deadlock!"},
		{"[  1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\n", "init exited"},
	} {
		if got := initDeath(tc.console); got != tc.want {
			t.Errorf("initDeath(%q) = %q, want %q", tc.console, got, tc.want)
		}
	}
}

func TestJudge(t *testing.T) {
	supported := Kernel{Name: "6.1", Supported: true}
	old := Kernel{Name: "5.10"}
	ok := func(name string) result.Check { return result.Check{Name: name, Status: result.Pass} }
	bad := func(name, detail string) result.Check {
		return result.Check{Name: name, Status: result.Fail, Detail: detail}
	}
	crashed := attempt{Release: "6.1.0", Crash: "Oops: 0000 [#1] SMP", Checks: []result.Check{ok("run-leaky")}}
	hung := attempt{Release: "6.1.0", NoResult: "no result within the 4m0s limit (after attach)"}
	done := func(cs ...result.Check) attempt { return attempt{Release: "6.1.0", Done: true, Checks: cs} }
	for _, tc := range []struct {
		name     string
		k        Kernel
		attempts []attempt
		result   string
		reason   []string
	}{
		{"all pass", supported, []attempt{done(ok("run-leaky"), ok("attach"), result.Check{Name: "verifier-report", Status: result.Skip})},
			Pass, []string{"2 checks passed, 1 skipped"}},
		{"a check fails: not a crash", supported,
			[]attempt{done(ok("run-leaky"), bad("attach", "no leaks counted"), bad("agent", "x"))},
			Fail, []string{"attach: no leaks counted", "also failed: agent"}},
		{"refusal shown", supported,
			[]attempt{done(bad("run-leaky", "leaktrace run: exit 125: loading failed [program sys_exit; verifier: invalid bpf_context access]"))},
			Fail, []string{"program sys_exit", "invalid bpf_context access"}},
		{"crash twice", supported, []attempt{crashed, crashed}, Crash, []string{"kernel crash: Oops", "after run-leaky", "retried"}},
		{"crash then pass", supported, []attempt{crashed, done(ok("run-leaky"))}, Pass, []string{"1 checks passed", "retried: boot 1 kernel crash"}},
		{"no result", supported, []attempt{hung, hung}, Crash, []string{"no result within"}},
		{"oops after done is still a crash", supported, []attempt{{Done: true, Crash: "BUG: soft lockup", Checks: []result.Check{ok("a")}}}, Crash, []string{"soft lockup"}},
		{"old kernel refuses", old, []attempt{done(result.Check{Name: "refuse", Status: result.Pass, Detail: "exit 125: needs Linux 6.1"})},
			Pass, []string{"refused as it must", "Linux 6.1"}},
		{"old kernel does not refuse cleanly", old, []attempt{done(bad("refuse", "2662 lines on stderr"))}, Fail, []string{"refuse: 2662 lines"}},
		{"nothing ran", supported, []attempt{done()}, Fail, []string{"no check passed"}},
		{"the guest init died: a harness bug, not retried", supported,
			[]attempt{{Release: "6.1.0", InitDied: "fatal error: deadlock", Checks: []result.Check{ok("attach")}}},
			Fail, []string{"guest init died: fatal error: deadlock (after attach)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := judge(tc.k, tc.attempts)
			if o.Result != tc.result {
				t.Errorf("result %s, want %s (%s)", o.Result, tc.result, o.Reason)
			}
			for _, w := range tc.reason {
				if !strings.Contains(o.Reason, w) {
					t.Errorf("reason %q lacks %q", o.Reason, w)
				}
			}
		})
	}
}

func TestSelectKernels(t *testing.T) {
	ks, err := selectKernels("6.1, 7.3")
	if err != nil || len(ks) != 2 || ks[0].Name != "6.1" || ks[1].Name != "7.3" {
		t.Errorf("selectKernels = %v, %v", ks, err)
	}
	if _, err := selectKernels("4.19"); err == nil || !strings.Contains(err.Error(), "have 5.10") {
		t.Errorf("unknown kernel: %v", err)
	}
	// The matrix keeps what issue 11 requires: a refused old kernel and
	// 6.1, 6.12, 6.18 and 7.x supported, each pinned.
	var names []string
	for _, k := range matrix {
		if k.Version == "" || k.Package == "" || k.Suite == "" {
			t.Errorf("%s is not pinned", k.Name)
		}
		if k.Supported {
			names = append(names, k.Name)
		}
	}
	if got := strings.Join(names, " "); got != "6.1 6.12 6.18 7.3" {
		t.Errorf("supported kernels %q", got)
	}
}
