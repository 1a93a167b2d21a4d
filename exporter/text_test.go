package exporter

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

func TestWriteText(t *testing.T) {
	deepStack := make([]report.Frame, 20)
	for i := range deepStack {
		deepStack[i] = report.Frame{Address: uint64(0x401000 + i), Function: fmt.Sprintf("main.f%d", i), File: "/src/main.go", Line: i + 1, Module: "/opt/app/bin/app"}
	}
	manyTargets := &report.Report{
		Mode: "run", Command: []string{"./app"}, Complete: true,
		Sites: []report.Site{{Key: "k", Count: 5, Kinds: map[string]int{"file": 5},
			Targets:  []string{"/t/1", "/t/2", "/t/3", "/t/4", "/t/5"},
			Headline: deepStack[0], Stack: deepStack}},
	}
	unsymbolized := []report.Frame{{Address: 0x401a2b, Module: "/opt/app/bin/app"}, {Address: 0x7f0000001000}}

	tests := []struct {
		name    string
		r       *report.Report
		opts    TextOptions
		inOrder []string // must all appear, in this order
		absent  []string
	}{
		{
			name: "run with lost events, budget exceeded, several processes",
			r:    runReport(),
			opts: TextOptions{MaxFrames: 3},
			inOrder: []string{
				"leaktrace run: python3 -m pytest 'tests/test db.py' — 2.31s, exit 1\n",
				"INCOMPLETE: 7 events lost (5120 received), 1 fd table rebuilt from /proc",
				"note: ring buffer full for 3 ms\n",
				// Count first: the socket site leads although it is listed last.
				"3 leaked sockets from db.connect (/srv/app/db.py:42)\n",
				"  targets: tcp 10.0.0.5:5432, tcp 10.0.0.6:5432, tcp 10.0.0.7:5432\n",
				"  exe: /usr/bin/python3.11\n",
				"  … 1 inner frame (syscall wrappers, runtime)\n",
				"  #1 0x7f3a1b4410aa [_socket.cpython-311-x86_64-linux-gnu.so]\n",
				"  #2 db.connect /srv/app/db.py:42 [python3.11]\n",
				"  #3 handler.serve /srv/app/handler.py:88 [python3.11]\n",
				// Equal counts: by key, "parquet" before "spawn".
				"1 leaked file from io.read_parquet (/srv/app/io.py:17)\n",
				"1 leaked pipe from jobs.spawn (/srv/app/jobs.py:9)\n",
				"  inherited at fork (not counted): 1 copy, in pid 1202\n",
				"no stack: 1 handle (eventfd=1)\n",
				"  pid 1201 (python3) fd 12 eventfd anon_inode:[eventfd]\n",
				"processes: 2\n",
				"  1201  1200  python3  6       1 (fd table rebuilt from /proc)\n",
				"  1202  1201  sh       0       0\n",
				"leaktrace: 6 leaked handles (socket=3 eventfd=1 file=1 pipe=1) in 3 sites from 1 process, plus 1 not counted (inherited at fork) [INCOMPLETE]; budget 2: exceeded (6 leaked)\n",
			},
			absent: []string{"#0 __connect", "more frame", "\x1b[", "open before attach", "outstanding", "from 0x0", "(no frames)", "runtime's own"},
		},
		{
			name: "attach puts growing sites first and lists preexisting handles apart",
			r:    attachReport(),
			inOrder: []string{
				"leaktrace attach: pid 4242 (api) — 10m0s\n",
				"2 leaked sockets from db.connect (/srv/app/db.py:42) [growing]\n",
				"  outstanding 9, growth +7, oldest 1m6s\n",
				"  #3 handler.serve /srv/app/handler.py:88 [python3.11]\n",
				"4 leaked files from io.read_parquet (/srv/app/io.py:17)\n",
				"  outstanding 4, growth 0, oldest 5m0s\n",
				"inherited at fork (not counted): 1 handle (pipe=1)\n",
				"  pid 4300 (helper) fd 9 pipe pipe:[99], age 2m0s (inherited at fork) from jobs.spawn (/srv/app/jobs.py:9)\n",
				"language runtime's own (not counted): 3 handles (thread=3)\n",
				"open before attach (not counted): 4 handles (socket=2 epoll=1 file=1)\n",
				"  pid 4242 (api) fd 3 file /var/log/api.log\n",
				"  … and 1 more\n",
				"leaktrace: 6 leaked handles (file=4 socket=2) in 2 sites from 1 process, plus 1 not counted (inherited at fork)\n",
			},
			absent: []string{"INCOMPLETE", "processes:", "budget", "exit", "no stack", "anon_inode:[eventpoll]", "runtime.clone", "tid 4243"},
		},
		{
			name: "no leaks",
			r:    cleanReport(),
			inOrder: []string{
				"leaktrace run: ./server --selftest — 400ms, exit 0\n",
				"leaktrace: no leaks (812 events, 0 lost, 1 process); budget 0: ok (0 leaked)\n",
			},
			absent: []string{"INCOMPLETE", "leaked handles", "#0"},
		},
		{
			name: "color only when asked",
			r:    runReport(),
			opts: TextOptions{Color: true},
			inOrder: []string{
				"\x1b[1mleaktrace run:",
				"\x1b[1;31mINCOMPLETE: 7 events lost",
				"\x1b[1m3 leaked sockets from db.connect (/srv/app/db.py:42)\x1b[0m\n",
				"\x1b[1;31mbudget 2: exceeded (6 leaked)\x1b[0m\n",
			},
		},
		{
			name: "default frame cap and target overflow",
			r:    manyTargets,
			inOrder: []string{
				"5 leaked files from main.f0 (/src/main.go:1)\n",
				"  targets: /t/1, /t/2, /t/3 … and 2 more\n",
				"  #15 main.f15 /src/main.go:16 [app]\n",
				"  … 4 more frames\n",
				"leaktrace: 5 leaked handles (file=5) in 1 site\n",
			},
			absent: []string{"#16", "/t/4"},
		},
		{
			name: "unsymbolized frames show address and module",
			r: &report.Report{Mode: "run", Complete: true, ExitCode: -1,
				Leaks: []report.Leak{{PID: 9, FD: 3, Kind: "memfd", Site: "x", Stack: unsymbolized}},
				Sites: []report.Site{{Key: "x", Count: 1, Kinds: map[string]int{"memfd": 1}, Stack: unsymbolized}}},
			inOrder: []string{
				"leaktrace run — 0s, exit -1 (signal or unknown)\n",
				"1 leaked memfd from 0x401a2b in app\n",
				"  #0 0x401a2b [app]\n",
				"  #1 0x7f0000001000\n",
				"leaktrace: 1 leaked handle (memfd=1) in 1 site\n",
			},
		},
		{
			name: "strings from the traced program cannot emit escapes",
			r: &report.Report{Mode: "run", Complete: true, Command: []string{"sh", "-c", "echo\x1b[2J"},
				Leaks: []report.Leak{{PID: 9, Comm: "evil\x07", FD: 3, Kind: "file", Target: "/tmp/\x1b[2Jx\xff"}}},
			inOrder: []string{
				`leaktrace run: sh -c $'echo\x1b[2J'`,
				`pid 9 (evil\a) fd 3 file /tmp/\x1b[2Jx\xff`,
			},
			absent: []string{"\x1b", "\a"},
		},
		{
			name: "attach target that exited, mixed-kind site, thread handle",
			r: &report.Report{Mode: "attach", PID: 50, Complete: true, Duration: 75,
				Leaks: []report.Leak{
					{PID: 50, FD: -1, TID: 51, Kind: "thread", Target: "worker", AgeSeconds: 30, Site: "s"},
					{PID: 50, FD: 4, Kind: "eventfd", AgeSeconds: 30, Site: "s"},
				},
				Sites: []report.Site{{Key: "s", Count: 2, Kinds: map[string]int{"thread": 1, "eventfd": 1},
					Headline: report.Frame{Function: "pool.start", File: "pool.go", Line: 3}}},
				Processes: []report.Process{{PID: 50, Comm: "srv", Exited: true, ExitCode: 3}}},
			inOrder: []string{
				"leaktrace attach: pid 50 (srv) — 1m15s, target exited, exit 3\n",
				"2 leaked handles (eventfd=1 thread=1) from pool.start (pool.go:3)\n",
				"  outstanding 2, growth 0, oldest 30s\n",
				"  target: worker\n",
				"  (no frames)\n",
			},
		},
		{
			name: "long process table keeps the command and the leakers",
			r: func() *report.Report {
				r := &report.Report{Mode: "run", Command: []string{"make"}, Complete: true}
				for i := range 40 {
					p := report.Process{PID: 100 + i, PPID: 99, Comm: "sh", Exited: true}
					if i == 7 || i == 30 {
						p.Leaked = 2
					}
					r.Processes = append(r.Processes, p)
				}
				return r
			}(),
			inOrder: []string{
				"processes: 40\n",
				"  PID  PPID  COMM  LEAKED  EXIT\n",
				"  100  99    sh    0       0\n",
				"  107  99    sh    2       0\n",
				"  130  99    sh    2       0\n",
				"  … and 37 more processes (0 leaked)\n",
			},
			absent: []string{"  101  99"},
		},
		{
			name: "summary from sites when the report carries no leak list",
			r: &report.Report{Mode: "agent", Complete: true,
				Sites: []report.Site{
					{Key: "a", Count: 2, Kinds: map[string]int{"socket": 2}, Headline: report.Frame{Function: "a"}},
					{Key: "b", Count: 1, Kinds: map[string]int{"pipe": 1}, Headline: report.Frame{Function: "b"}, Growth: 1},
					{Key: "", Count: 4, Kinds: map[string]int{"file": 4}, Targets: []string{"/a", "/b"}, Growth: 4},
				},
				Processes: []report.Process{{PID: 1, Leaked: 2}, {PID: 2, Leaked: 1}}},
			inOrder: []string{
				"leaktrace agent: 2 processes — 0s\n",
				"1 leaked pipe from b [growing]\n",
				"2 leaked sockets from a\n",
				"no stack: 4 handles (file=4)\n",
				"  targets: /a, /b\n",
				"leaktrace: 7 leaked handles (file=4 socket=2 pipe=1) in 2 sites from 2 processes\n",
			},
			absent: []string{"0x0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			firstSite := ""
			if len(tc.r.Sites) > 0 {
				firstSite = tc.r.Sites[0].Key
			}
			var b strings.Builder
			if err := WriteText(&b, tc.r, tc.opts); err != nil {
				t.Fatalf("WriteText: %v", err)
			}
			out := b.String()
			rest := out
			for _, want := range tc.inOrder {
				i := strings.Index(rest, want)
				if i < 0 {
					if strings.Contains(out, want) {
						t.Errorf("%q is out of order", want)
					} else {
						t.Errorf("missing %q", want)
					}
					continue
				}
				rest = rest[i+len(want):]
			}
			for _, bad := range tc.absent {
				if strings.Contains(out, bad) {
					t.Errorf("unexpected %q", bad)
				}
			}
			if len(tc.r.Sites) > 0 && tc.r.Sites[0].Key != firstSite {
				t.Errorf("WriteText reordered the caller's sites")
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func TestWriteTextSummaryIsLastLine(t *testing.T) {
	for _, r := range []*report.Report{runReport(), attachReport(), cleanReport()} {
		var b strings.Builder
		if err := WriteText(&b, r, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "leaktrace: ") {
			t.Errorf("%s: last line %q is not the summary", r.Mode, last)
		}
	}
}

type failWriter struct{}

var errDiskFull = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestWriteErrors(t *testing.T) {
	if err := WriteText(failWriter{}, runReport(), TextOptions{}); !errors.Is(err, errDiskFull) {
		t.Errorf("WriteText to a failing writer: got %v, want %v", err, errDiskFull)
	}
	if err := WriteJSON(failWriter{}, runReport()); !errors.Is(err, errDiskFull) {
		t.Errorf("WriteJSON to a failing writer: got %v, want %v", err, errDiskFull)
	}
	if err := WriteLive(failWriter{}, LiveView{}); !errors.Is(err, errDiskFull) {
		t.Errorf("WriteLive to a failing writer: got %v, want %v", err, errDiskFull)
	}
	if err := WriteText(&strings.Builder{}, nil, TextOptions{}); err == nil {
		t.Error("WriteText(nil report) succeeded")
	}
	if err := WriteJSON(&strings.Builder{}, nil); err == nil {
		t.Error("WriteJSON(nil report) succeeded")
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"ls":         "ls",
		"--flag=a,b": "--flag=a,b",
		"":           "''",
		"a b":        "'a b'",
		"it's":       `'it'\''s'`,
		"a\nb":       `$'a\nb'`,
		`x\'` + "\t": `$'x\\\'\t'`,
	}
	for in, want := range tests {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
