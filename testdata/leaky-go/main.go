// Command leaky-go leaks known handles for leaktrace's integration tests and
// writes the ground truth (who opened which fd, and /proc/self/fd) at exit.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

var keep []any

//go:noinline
func leakFile() {
	f, err := os.Open("/etc/hostname")
	if err != nil {
		panic(err)
	}
	keep = append(keep, f)
	truthLeak(int(f.Fd()), "main.leakFile")
}

//go:noinline
func leakListener() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	keep = append(keep, ln)
	f, _ := ln.(*net.TCPListener).File() // a dup: leaked too
	keep = append(keep, f)
	truthLeak(int(f.Fd()), "main.leakListener")
	rc, _ := ln.(*net.TCPListener).SyscallConn()
	rc.Control(func(fd uintptr) { truthLeak(int(fd), "main.leakListener") })
}

//go:noinline
func leakPipe() {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	keep = append(keep, r, w)
	truthLeak(int(r.Fd()), "main.leakPipe")
	truthLeak(int(w.Fd()), "main.leakPipe")
}

//go:noinline
func balanced() {
	for range 100 {
		f, err := os.Open("/dev/null")
		if err != nil {
			panic(err)
		}
		f.Close()
	}
}

var truth []string

func truthLeak(fd int, fn string) { truth = append(truth, fmt.Sprintf("leak %d %s", fd, fn)) }

func main() {
	balanced()
	if len(os.Args) < 2 || os.Args[1] != "balanced" {
		leakFile()
		leakListener()
		leakPipe()
	}
	p := os.Getenv("LEAKTRACE_TRUTH")
	if p == "" {
		return
	}
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		panic(err)
	}
	names, err := dir.Readdirnames(-1)
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		if n != strconv.Itoa(int(dir.Fd())) { // the listing's own fd, closed next
			truth = append(truth, "open "+n)
		}
	}
	dir.Close()
	out := ""
	for _, l := range truth {
		out += l + "\n"
	}
	// WriteFile's own fd is opened after the listing was taken.
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		panic(err)
	}
}
