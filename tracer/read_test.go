package tracer

import (
	"os/exec"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/event"
)

// TestReadUntilDrainsASlowReader: what is in the ring when stop is closed is
// all read, however slow the reader (a VM under TCG lagged its kernel by
// more than the old half-second drain at a process's end, and the report
// lost the process's last closes while calling itself complete).
func TestReadUntilDrainsASlowReader(t *testing.T) {
	requireRoot(t)
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// A shell that waits for a line, then opens and closes /dev/null n
	// times (a builtin's redirection: no fork).
	const n = 300
	sh := exec.Command("sh", "-c", "read go; i=0; while [ $i -lt 300 ]; do : </dev/null; i=$((i+1)); done")
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(sh.Process.Pid)
	if err := tr.Trace(pid); err != nil {
		t.Fatal(err)
	}
	// Nothing reads yet: every record waits in the ring.
	in.Write([]byte("go\n"))
	if err := sh.Wait(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	close(stop)

	var dec Decoder
	var d Decoded
	closes, total := 0, 0
	start := time.Now()
	err = tr.ReadUntil(stop, func(raw []byte) error {
		if dec.Decode(raw, &d) == nil && d.Event.Type == event.FDClose && d.Event.PID == pid {
			closes++
		}
		total++
		time.Sleep(500 * time.Microsecond) // ~2,000 records: twice drainLimit at least
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read %d records, %d closes in %v after stop; %d bytes unread", total, closes, took.Round(time.Millisecond), c.UnreadBytes)
	if took < drainLimit {
		t.Fatalf("the drain took %v: too fast to show that it outlasts drainLimit (%v)", took, drainLimit)
	}
	if closes < n {
		t.Errorf("read %d of the %d closes made before stop", closes, n)
	}
	if c.UnreadBytes != 0 {
		t.Errorf("%d bytes left unread", c.UnreadBytes)
	}
}
