package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runCaptured runs the CLI in this process and returns its exit code and
// what it wrote to stderr.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stderr
	os.Stderr = f
	code := run(args)
	os.Stderr = saved
	out, _ := os.ReadFile(f.Name())
	return code, string(out)
}

// Every bad flag is refused before anything is loaded, as or not as root:
// exit 125 and one line naming the flag (before, some passed to the BPF load
// and came back as "needs Linux 6.1+", and --interval 0 panicked after it).
func TestFlagValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	notExec := filepath.Join(dir, "script.sh")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	sub := filepath.Join(dir, "subdir")
	os.Mkdir(sub, 0o755)
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"attach interval 0", []string{"attach", "--interval", "0", self}, 125, "--interval"},
		{"attach interval negative", []string{"attach", "--interval", "-1s", self}, 125, "--interval"},
		{"attach interval below the floor", []string{"attach", "--interval", "1ns", self}, 125, "at least 100ms"},
		{"attach negative duration", []string{"attach", "--duration", "-5s", self}, 125, "--duration"},
		{"attach negative min-age", []string{"attach", "--min-age", "-1s", self}, 125, "--min-age"},
		{"attach max-frames -1", []string{"attach", "--max-frames", "-1", self}, 125, "--max-frames"},
		{"attach json unwritable", []string{"attach", "--json", filepath.Join(file, "x.json"), self}, 125, "cannot write"},
		{"ring buffer 2^32 (wrapped to 0)", []string{"run", "--ring-buffer-size", "4294967296", "--", "true"}, 125, "--ring-buffer-size"},
		{"ring buffer not a power of two", []string{"run", "--ring-buffer-size", "5000", "--", "true"}, 125, "--ring-buffer-size"},
		{"ring buffer below a page", []string{"attach", "--ring-buffer-size", "1024", self}, 125, "--ring-buffer-size"},
		{"stack bytes too many", []string{"run", "--stack-bytes", "9000", "--", "true"}, 125, "--stack-bytes"},
		{"stack bytes negative", []string{"attach", "--stack-bytes", "-1", self}, 125, "--stack-bytes"},
		{"run max-frames -1", []string{"run", "--max-frames", "-1", "--", "true"}, 125, "--max-frames"},
		{"budget empty", []string{"run", "--budget", "", "--", "true"}, 125, "empty budget item"},
		{"budget empty item", []string{"run", "--budget", "3,,socket=0", "--", "true"}, 125, "empty budget item"},
		{"budget duplicate", []string{"run", "--budget", "socket=0", "--budget", "socket=2", "--", "true"}, 125, "already given"},
		{"json into a missing directory", []string{"run", "--json", filepath.Join(dir, "none", "x.json"), "--", "true"}, 125, "cannot write"},
		{"json onto a directory", []string{"run", "--json", sub, "--", "true"}, 125, "is a directory"},
		{"sarif under a file", []string{"run", "--sarif", filepath.Join(file, "x.sarif"), "--", "true"}, 125, "cannot write"},
		{"two reports, one file", []string{"run", "--json", filepath.Join(dir, "r"), "--sarif", filepath.Join(dir, "r"), "--", "true"}, 125, "two reports"},
		{"command not executable", []string{"run", "--", notExec}, 126, "permission denied"},
		{"command is a directory", []string{"run", "--", sub}, 126, "permission denied"},
		{"command not found", []string{"run", "--", filepath.Join(dir, "nothing-here")}, 127, "command not found"},
		{"agent telemetry path empty", []string{"agent", "--web.telemetry-path", ""}, 125, "--web.telemetry-path"},
		{"agent telemetry path relative", []string{"agent", "--web.telemetry-path", "metrics"}, 125, "--web.telemetry-path"},
		{"agent telemetry path /healthz", []string{"agent", "--web.telemetry-path", "/healthz"}, 125, "--web.telemetry-path"},
		{"agent telemetry path /debug/leaks", []string{"agent", "--web.telemetry-path", "/debug/leaks"}, 125, "--web.telemetry-path"},
		{"agent interval 0", []string{"agent", "--interval", "0"}, 125, "--interval"},
		{"agent interval 1ns", []string{"agent", "--interval", "1ns"}, 125, "--interval"},
		{"agent ring buffer", []string{"agent", "--ring-buffer-size", "3"}, 125, "--ring-buffer-size"},
		{"agent external url", []string{"agent", "--web.external-url", "localhost:9808"}, 125, "--web.external-url"},
		{"agent external label", []string{"agent", "--alert.external-label", "novalue"}, 125, "--alert.external-label"},
		{"report negative max-frames", []string{"report", "--max-frames", "-1", file}, 125, "--max-frames"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out := runCaptured(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("want one line naming %q; stderr:\n%s", tc.want, out)
			}
			if strings.Contains(out, "goroutine") || strings.Contains(out, "BPF") {
				t.Errorf("got past validation:\n%s", out)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v: something was loaded before the flags were checked", d)
			}
		})
	}
	// The probe of an output path leaves nothing behind.
	if _, err := os.Stat(filepath.Join(dir, "r")); err == nil {
		t.Error("checking an output path left a file behind")
	}
}

// A non-executable CMD found on $PATH gets 126 as in a shell, not 127.
func TestRunNotExecutableOnPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o644)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	code, out := runCaptured(t, "run", "--", "tool")
	if code != 126 || !strings.Contains(out, "permission denied") {
		t.Errorf("exit %d, want 126 permission denied:\n%s", code, out)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal(err)
	}
	if code, _ := runCaptured(t, "run", "--", "no-such-tool-anywhere"); code != 127 {
		t.Errorf("missing command: exit %d, want 127", code)
	}
}

func TestVersionFlag(t *testing.T) {
	f, _ := os.CreateTemp(t.TempDir(), "stdout")
	saved := os.Stdout
	os.Stdout = f
	code := run([]string{"--version"})
	os.Stdout = saved
	out, _ := os.ReadFile(f.Name())
	if code != 0 || !strings.HasPrefix(string(out), "leaktrace ") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}
