package exporter

import (
	"bytes"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

func TestWriteTextPolicy(t *testing.T) {
	r := policyReport()
	r.Budget.Sites = []report.BudgetLimit{
		{Name: "connect", Where: "db.connect (/srv/app/db.py:42)", Limit: 1, Leaked: 3, Exceeded: true},
		{Name: "", Limit: 1, Leaked: 1},
	}
	r.Executables = []report.Executable{
		{Exe: "/usr/bin/python3.11", Processes: 1, Leaked: 4, Kinds: map[string]int{"socket": 3, "eventfd": 1}, Sites: 1},
		{Exe: "/bin/sh", Processes: 1, Kinds: map[string]int{}},
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"3 leaked sockets from db.connect (/srv/app/db.py:42)",
		"suppressed (not counted): 1 handle (file=1)",
		"  1 by leaktrace.supp:3: fun:io.*",
		"in the baseline (not counted): 1 handle (pipe=1)",
		"executables: 2\n  LEAKED  SITES  PROCS  KINDS               EXE\n  4       1      1      socket=3 eventfd=1  /usr/bin/python3.11\n  0       0      1      -                   /bin/sh\n",
		"plus 3 not counted (1 inherited at fork, 1 suppressed, 1 in the baseline)",
		"budget socket=0: exceeded (3 leaked), site db.connect (/srv/app/db.py:42)=1: exceeded (3 leaked), 1 site within the site limit",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	// A site whose leaks were all left out is not ranked as a leak site.
	if strings.Contains(out, "leaked file from io.read_parquet") || strings.Contains(out, "0 leaked") {
		t.Errorf("a policy-emptied site is shown as leaking:\n%s", out)
	}
}
