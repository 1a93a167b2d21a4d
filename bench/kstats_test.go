package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTiming(t *testing.T) {
	tests := []struct {
		in      string
		want    sample
		wantErr bool
	}{
		{"1500000 0 200\n", sample{loop: 1500 * time.Microsecond, rounds: 200}, false},
		{"42 19936 7", sample{loop: 42, held: 19936, rounds: 7}, false},
		{"42 0\n", sample{}, true}, // the two-field format of before: rounds are needed now
		{"", sample{}, true},
	}
	for _, tt := range tests {
		got, err := parseTiming([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTiming(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

const abOutput = `This is ApacheBench, Version 2.3 <$Revision: 1903618 $>
Server Software:        nginx/1.22.1
Server Hostname:        127.0.0.1
Document Length:        615 bytes

Concurrency Level:      20
Time taken for tests:   0.969 seconds
Complete requests:      20000
Failed requests:        0
Total transferred:      17100000 bytes
Requests per second:    20640.22 [#/sec] (mean)
Time per request:       0.969 [ms] (mean)
`

func TestParseAB(t *testing.T) {
	rps, err := parseAB(abOutput, 20000)
	if err != nil || rps != 20640.22 {
		t.Errorf("parseAB = %v, %v; want 20640.22", rps, err)
	}
	for name, out := range map[string]string{
		"failed":     strings.Replace(abOutput, "Failed requests:        0", "Failed requests:        3", 1),
		"non-2xx":    abOutput + "Non-2xx responses:      20000\n",
		"incomplete": strings.Replace(abOutput, "Complete requests:      20000", "Complete requests:      19000", 1),
		"no rate":    strings.Replace(abOutput, "Requests per second", "Requests", 1),
		"empty":      "",
	} {
		if rps, err := parseAB(out, 20000); err == nil {
			t.Errorf("%s: parseAB = %v, want an error", name, rps)
		}
	}
}

func FuzzParseAB(f *testing.F) {
	f.Add(abOutput, 20000)
	f.Add("Requests per second: x\nComplete requests: 1\n", 1)
	f.Fuzz(func(t *testing.T, out string, n int) {
		rps, err := parseAB(out, n)
		if err == nil && !(rps > 0) {
			t.Errorf("parseAB accepted a rate of %v", rps)
		}
	})
}

func TestParseStatCPU(t *testing.T) {
	// comm holds a space and a parenthesis; utime 250, stime 50 ticks.
	line := "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10\n"
	got, err := parseStatCPU(line)
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "1234 (x", "1234 (x) S 1 2", "1234 (x) S 1 1 1 0 -1 0 0 0 0 0 u s",
		"1 (a) S 1 1 1 0 -1 0 0 0 0 0 922337203685 922337203685 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) took it", bad)
		}
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add("1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10\n")
	f.Add("1 (a) S 1 1 1 0 -1 0 0 0 0 0 922337203685 922337203685 0\n")
	f.Fuzz(func(t *testing.T, line string) {
		if d, err := parseStatCPU(line); err == nil && d < 0 {
			t.Errorf("negative CPU time %v", d)
		}
	})
}

// processCPU reads the kernel's per-process CPU clock of another process by
// pid: checked on this process against /proc/self/stat, which samples the
// same time at the tick, while burning CPU (until stat has seen 100 ms, however
// long a loaded machine takes to give them).
func TestProcessCPU(t *testing.T) {
	pid := os.Getpid()
	before, err := processCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	statBefore, err := statCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	var statAfter time.Duration
	for deadline := time.Now().Add(30 * time.Second); ; {
		for i := 0; i < 1e6; i++ {
			sink += i
		}
		if statAfter, err = statCPU(pid); err != nil {
			t.Fatal(err)
		}
		if statAfter-statBefore >= 100*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/proc/self/stat counted %v of CPU in 30 s of busy loop", statAfter-statBefore)
		}
	}
	after, err := processCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	statLast, err := statCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// stat's times are ticks of 10 ms: allow two.
	const slack = 20 * time.Millisecond
	if got, want := after-before, statAfter-statBefore; got < want-slack {
		t.Errorf("CPU clock counted %v while /proc/self/stat counted %v", got, want)
	}
	if after > statLast+slack || after < statLast-slack-100*time.Millisecond {
		t.Errorf("CPU clock %v, /proc/self/stat %v after it", after, statLast)
	}
}

var sink int

func TestReadFdinfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fdinfo")
	os.WriteFile(path, []byte("pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nprog_type:\t26\nprog_jited:\t1\n"+
		"prog_tag:\tf2c4d3a1b2c3d4e5\nmemlock:\t8192\nprog_id:\t1149\nrun_time_ns:\t84791811\nrun_cnt:\t290082\n"), 0o644)
	got, err := readFdinfo(path)
	if err != nil {
		t.Fatal(err)
	}
	if got[fdinfoProgID] != 1149 || got["run_cnt"] != 290082 || got["flags"] != 2000002 {
		t.Errorf("readFdinfo = %v", got)
	}
	if _, ok := got["prog_tag"]; ok {
		t.Error("a hex tag read as a number")
	}
}

func TestSnapshotDelta(t *testing.T) {
	a := kSnapshot{progs: map[string]progStat{"sys_enter": {10, 1000}, "sys_exit": {10, 3000}, "idle": {5, 50}},
		produced: 4096, sent: 3, hasSent: true, cpu: time.Second}
	b := kSnapshot{progs: map[string]progStat{"sys_enter": {110, 21000}, "sys_exit": {110, 63000}, "idle": {5, 50}},
		produced: 4096 + 160000, sent: 103, hasSent: true, cpu: time.Second + 2*time.Millisecond}
	d := a.to(b, true)
	want := []progDelta{{"sys_exit", 100, 60000}, {"sys_enter", 100, 20000}}
	if len(d.progs) != 2 || d.progs[0] != want[0] || d.progs[1] != want[1] {
		t.Errorf("programs %+v, want %+v (most time first, idle ones left out)", d.progs, want)
	}
	if d.ns != 80000 || d.bytes != 160000 || d.sent != 100 || d.cpu != 2*time.Millisecond || !d.hasSent {
		t.Errorf("delta %+v", d)
	}
	w := window{kDelta: d, syscalls: 100, loop: time.Millisecond}
	var sum window
	sum.add(w)
	sum.add(w)
	if sum.ns != 160000 || sum.syscalls != 200 || sum.sent != 200 || len(sum.progs) != 2 || sum.progs[0].Runs != 200 {
		t.Errorf("sum of two windows %+v", sum)
	}
	got := progSummary(sum)
	if want := "sys_exit 600 ns × 1.00, sys_enter 200 ns × 1.00 per followed syscall; ns per run × runs"; got != want {
		t.Errorf("progSummary = %q, want %q", got, want)
	}
}

// churnBinary compiles the workload for the tests that run it.
func churnBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gcc is missing (apt-get install -y gcc)")
		}
		t.Skip("no gcc to compile the workload")
	}
	b := &bench{dir: t.TempDir()}
	if err := b.compileChurn(); err != nil {
		t.Fatal(err)
	}
	return b.churn
}

// A paced churn does its rate for its duration, and its processes' rounds
// are summed.
func TestChurnPaced(t *testing.T) {
	churn := churnBinary(t)
	out := filepath.Join(t.TempDir(), "out")
	if b, err := exec.Command(churn, "-m", "open", "-r", "2000", "-d", "0.5", "-p", "2", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	data, _ := os.ReadFile(out)
	s, err := parseTiming(data)
	if err != nil {
		t.Fatal(err)
	}
	// 2 processes × 2000 rounds/s × 0.5 s; a loaded machine may lag.
	if s.rounds < 1000 || s.rounds > 2000 || s.loop < 500*time.Millisecond || s.loop > 5*time.Second {
		t.Errorf("paced churn: %d rounds in %v, want 1000-2000 rounds in about 0.5 s", s.rounds, s.loop)
	}
}

// A gated churn waits at "ready" and at "done" for a byte on stdin.
func TestChurnGated(t *testing.T) {
	churn := churnBinary(t)
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(churn, "-g", "-m", "interleave", "-n", "100", "-o", out)
	in, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("first line %q, want ready", lines.Text())
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the churn ran past its gate")
	}
	in.Write([]byte{'\n'})
	if !lines.Scan() || lines.Text() != "done" {
		t.Fatalf("second line %q, want done", lines.Text())
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the churn wrote its timing before its second gate")
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if s, err := parseTiming(data); err != nil || s.rounds != 100 {
		t.Errorf("timing %q: %+v, %v", data, s, err)
	}
}
