package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/session"
)

// TestPropertyAttach is the property test for attach: fdgen runs untraced
// until its first checkpoint, leaktrace attaches to it there (its table seeded
// from /proc, the fds already open kept apart as preexisting), and every later
// checkpoint of the process and of the child it forks afterwards must match
// /proc/PID/fd as in run mode.
func TestPropertyAttach(t *testing.T) {
	requireRoot(t)
	gen := filepath.Join(binaries(t), "fdgen")
	for _, seed := range []string{"11", "12"} {
		t.Run("seed="+seed, func(t *testing.T) {
			rd, wr, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			hist := newHistory()
			sess, err := session.New(session.Options{Mode: aggregator.ModeAttach, OnEvent: hist.add})
			if err != nil {
				t.Fatalf("starting session: %v", err)
			}
			defer sess.Close()
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- sess.Run(stop) }()
			defer func() { close(stop); <-done }()

			cmd := exec.Command(gen, seed, "1600", "50")
			cmd.Stdout, cmd.Stderr = wr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatalf("starting fdgen: %v", err)
			}
			wr.Close()
			root := cmd.Process.Pid
			attached := false
			attach := func(pid int) error {
				if attached {
					return nil
				}
				// Attach while the process stands still, with fds open.
				attached = true
				return sess.Add(pid)
			}
			last, checked := checkpoints(t, rd, sess, hist, root, attach)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("fdgen: %v", err)
			}
			if len(last) < 2 {
				t.Fatalf("checkpoints came from %d processes, want the attached one and the child it forked later", len(last))
			}
			t.Logf("seed %s: %d checkpoints after attaching, %d processes", seed, checked, len(last))
		})
	}
}
