// Package leakygotest is a test suite with known leaks, for running `go test`
// under `leaktrace run`: one test leaks a file in the test process, another
// starts a child process (the test binary again) that leaks a socket.
package leakygotest

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

var keep []any

//go:noinline
func leakFile(t *testing.T) {
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	keep = append(keep, f)
}

func TestLeaksFile(t *testing.T) { leakFile(t) }

//go:noinline
func leakSocket() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	keep = append(keep, ln)
}

// TestLeaksInChild runs this test binary again as a child that leaks a socket:
// a deeper process tree, as test helpers and fixtures make.
func TestLeaksInChild(t *testing.T) {
	if os.Getenv("LEAKY_GOTEST_CHILD") == "1" {
		leakSocket()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeaksInChild$")
	cmd.Env = append(os.Environ(), "LEAKY_GOTEST_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestClean(t *testing.T) {
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
