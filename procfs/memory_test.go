package procfs

import (
	"os"
	"strings"
	"testing"
)

const statusText = `Name:	cat
Umask:	0022
State:	R (running)
VmPeak:	    3060 kB
VmSize:	    3060 kB
VmHWM:	    1672 kB
VmRSS:	    1672 kB
RssAnon:	     116 kB
RssFile:	    1556 kB
RssShmem:	       0 kB
VmData:	     360 kB
Threads:	1
`

func TestParseMemory(t *testing.T) {
	m, err := ParseMemory(statusText)
	if err != nil {
		t.Fatal(err)
	}
	want := Memory{Virtual: 3060 << 10, Resident: 1672 << 10, Anon: 116 << 10, File: 1556 << 10}
	if m != want {
		t.Errorf("ParseMemory = %+v, want %+v", m, want)
	}
	for _, bad := range []string{
		"",                           // no memory lines
		"Name:	kthreadd\nState:	S\n", // a kernel thread
		"VmRSS:	12 MB\n",
		"VmRSS:	x kB\n",
		"VmRSS:	99999999999999999999 kB\n",
	} {
		if _, err := ParseMemory(bad); err == nil {
			t.Errorf("ParseMemory(%q): no error", bad)
		}
	}
}

// The kernel's own status of this process parses and adds up.
func TestReadMemorySelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.Resident == 0 || m.Virtual < m.Resident || m.Anon+m.File+m.Shmem != m.Resident {
		t.Errorf("own memory %+v: resident must be anon+file+shmem, nonzero, below virtual", m)
	}
}

func FuzzParseMemory(f *testing.F) {
	f.Add(statusText)
	f.Add("VmRSS:	1 kB\nRssAnon:	1 kB")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMemory(s)
		if err != nil {
			return
		}
		if !strings.Contains(s, "kB") || m.Resident > 1<<63 {
			t.Fatalf("parsed %+v from %q", m, s)
		}
	})
}
