package exporter

import "github.com/leaktrace/leaktrace/report"

// Reports shaped like what the aggregator produces for the programs in the design's
// story: a Python service leaking connections, parquet files and subprocess pipes.

var (
	pyConnect = []report.Frame{
		{Address: 0x7f3a1c0e2b10, Function: "__connect", File: "../sysdeps/unix/sysv/linux/connect.c", Line: 26, Module: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{Address: 0x7f3a1b4410aa, Module: "/usr/lib/python3.11/lib-dynload/_socket.cpython-311-x86_64-linux-gnu.so"},
		{Address: 0x55d0c8a1f000, Function: "db.connect", File: "/srv/app/db.py", Line: 42, Module: "/usr/bin/python3.11"},
		{Address: 0x55d0c8a1f100, Function: "handler.serve", File: "/srv/app/handler.py", Line: 88, Module: "/usr/bin/python3.11"},
	}
	pyParquet = []report.Frame{
		{Address: 0x7f3a1c0f0000, Function: "__libc_open64", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{Address: 0x55d0c8a20000, Function: "io.read_parquet", File: "/srv/app/io.py", Line: 17, Module: "/usr/bin/python3.11"},
	}
	pyPipe = []report.Frame{
		{Address: 0x7f3a1c0f1000, Function: "pipe2", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{Address: 0x55d0c8a21000, Function: "jobs.spawn", File: "/srv/app/jobs.py", Line: 9, Module: "/usr/bin/python3.11"},
	}
)

// runReport: two processes, three sites, a leak without a stack, an inherited
// copy, lost events and an exceeded budget.
func runReport() *report.Report {
	return &report.Report{
		Schema:   report.Schema,
		Mode:     "run",
		Command:  []string{"python3", "-m", "pytest", "tests/test db.py"},
		ExitCode: 1,
		Started:  "2025-03-01T10:00:00Z",
		Duration: 2.31,
		Complete: false,
		Events:   report.Events{Received: 5120, Lost: 7},
		Notes:    []string{"ring buffer full for 3 ms"},
		Leaks: []report.Leak{
			{PID: 1201, Comm: "python3", Exe: "/usr/bin/python3.11", FD: 5, Kind: "file", Target: "/data/a.parquet", AgeSeconds: 2.1, Site: "parquet", Stack: pyParquet},
			{PID: 1201, Comm: "python3", Exe: "/usr/bin/python3.11", FD: 6, Kind: "socket", Target: "tcp 10.0.0.5:5432", AgeSeconds: 2.0, Site: "connect", Stack: pyConnect},
			{PID: 1201, Comm: "python3", Exe: "/usr/bin/python3.11", FD: 7, Kind: "socket", Target: "tcp 10.0.0.6:5432", AgeSeconds: 1.9, Site: "connect", Stack: pyConnect},
			{PID: 1201, Comm: "python3", Exe: "/usr/bin/python3.11", FD: 8, Kind: "socket", Target: "tcp 10.0.0.7:5432", AgeSeconds: 1.8, Site: "connect", Stack: pyConnect},
			{PID: 1201, Comm: "python3", Exe: "/usr/bin/python3.11", FD: 9, Kind: "pipe", Target: "pipe:[4711]", AgeSeconds: 1.0, Site: "spawn", Stack: pyPipe},
			{PID: 1202, Comm: "sh", Exe: "/bin/sh", FD: 9, Kind: "pipe", Target: "pipe:[4711]", AgeSeconds: 0.9, Inherited: true, Site: "spawn", Stack: pyPipe},
			{PID: 1201, Comm: "python3", Exe: "/usr/bin/python3.11", FD: 12, Kind: "eventfd", Target: "anon_inode:[eventfd]", AgeSeconds: 0.5, Stack: []report.Frame{}},
		},
		Sites: []report.Site{
			{Key: "spawn", Count: 1, Headline: pyPipe[1], Kinds: map[string]int{"pipe": 1}, Targets: []string{"pipe:[4711]"}, Exes: []string{"/usr/bin/python3.11"}, Stack: pyPipe},
			{Key: "parquet", Count: 1, Headline: pyParquet[1], Kinds: map[string]int{"file": 1}, Targets: []string{"/data/a.parquet"}, Exes: []string{"/usr/bin/python3.11"}, Stack: pyParquet},
			{Key: "connect", Count: 3, Headline: pyConnect[2], Kinds: map[string]int{"socket": 3}, Targets: []string{"tcp 10.0.0.5:5432", "tcp 10.0.0.6:5432"}, Exes: []string{"/usr/bin/python3.11"}, Stack: pyConnect},
			// The session groups counted leaks without a stack under the key "".
			{Key: "", Count: 1, Kinds: map[string]int{"eventfd": 1}, Targets: []string{"anon_inode:[eventfd]"}, Exes: []string{"/usr/bin/python3.11"}, Stack: []report.Frame{}},
		},
		Processes: []report.Process{
			{PID: 1202, PPID: 1201, Comm: "sh", Exe: "/bin/sh", Leaked: 0, Exited: true, ExitCode: 0},
			{PID: 1201, PPID: 1200, Comm: "python3", Exe: "/usr/bin/python3.11", Leaked: 6, Exited: true, ExitCode: 1, Reconciled: true},
		},
		Budget: &report.Budget{Limit: 2, Leaked: 6, Exceeded: true},
	}
}

// attachReport: a session on a live process where one small site keeps growing and
// handles were open before attach.
func attachReport() *report.Report {
	var leaks []report.Leak
	for i := range 4 {
		leaks = append(leaks, report.Leak{PID: 4242, Comm: "api", FD: 20 + i, Kind: "file", Target: "/var/cache/x", AgeSeconds: 300, Site: "parquet", Stack: pyParquet})
	}
	for i := range 2 {
		leaks = append(leaks, report.Leak{PID: 4242, Comm: "api", FD: 40 + i, Kind: "socket", Target: "tcp 10.0.0.5:5432", AgeSeconds: 65 + float64(i), Site: "connect", Stack: pyConnect})
	}
	goThread := []report.Frame{{Address: 0x4a1000, Function: "runtime.clone", File: "/usr/lib/go/src/runtime/sys_linux_amd64.s", Line: 620, Module: "/opt/api/api"},
		{Address: 0x4a2000, Function: "runtime.newosproc", File: "/usr/lib/go/src/runtime/os_linux.go", Line: 186, Module: "/opt/api/api"}}
	for i := range 3 {
		leaks = append(leaks, report.Leak{PID: 4242, Comm: "api", FD: -1, TID: 4243 + i, Kind: "thread", Target: "thread", AgeSeconds: 600, Internal: true, Site: "gothread", Stack: goThread})
	}
	// A copy inherited by a helper whose parent has since closed its own: its site
	// counted nothing.
	leaks = append(leaks, report.Leak{PID: 4300, Comm: "helper", FD: 9, Kind: "pipe", Target: "pipe:[99]", AgeSeconds: 120, Inherited: true, Site: "spawn", Stack: pyPipe})
	return &report.Report{
		Schema:   report.Schema,
		Mode:     "attach",
		PID:      4242,
		ExitCode: 0,
		Started:  "2025-03-01T10:00:00Z",
		Duration: 600,
		Complete: true,
		Events:   report.Events{Received: 90000},
		Leaks:    leaks,
		Sites: []report.Site{
			{Key: "parquet", Count: 4, Outstanding: 4, Growth: 0, Headline: pyParquet[1], Kinds: map[string]int{"file": 4}, Targets: []string{"/var/cache/x"}, Stack: pyParquet},
			{Key: "connect", Count: 2, Outstanding: 9, Growth: 7, Headline: pyConnect[2], Kinds: map[string]int{"socket": 2}, Targets: []string{"tcp 10.0.0.5:5432"}, Stack: pyConnect},
		},
		Preexisting: []report.Leak{
			{PID: 4242, Comm: "api", FD: 3, Kind: "file", Target: "/var/log/api.log"},
			{PID: 4242, Comm: "api", FD: 4, Kind: "socket", Target: "tcp 0.0.0.0:8080"},
			{PID: 4242, Comm: "api", FD: 5, Kind: "socket", Target: "unix /run/api.sock"},
			{PID: 4242, Comm: "api", FD: 6, Kind: "epoll", Target: "anon_inode:[eventpoll]"},
		},
		Processes: []report.Process{{PID: 4242, PPID: 1, Comm: "api", Leaked: 6}},
	}
}

// cleanReport: a run that leaked nothing, within its budget.
func cleanReport() *report.Report {
	return &report.Report{
		Schema:    report.Schema,
		Mode:      "run",
		Command:   []string{"./server", "--selftest"},
		Duration:  0.4,
		Complete:  true,
		Events:    report.Events{Received: 812},
		Processes: []report.Process{{PID: 77, PPID: 1, Comm: "server", Exited: true}},
		Budget:    &report.Budget{Limit: 0},
	}
}
