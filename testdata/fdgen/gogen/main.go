// gogen: a random sequence of the fd work Go programs do (os.Open, os.Pipe,
// net.Dial and Listen, os/exec with pipes, goroutines), with the runtime's
// own epoll and pipe fds in the table, stopping at checkpoints so a test can
// compare leaktrace's live table with /proc/PID/fd.
//
//	gogen SEED OPS CHECK_EVERY
package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
)

func main() {
	seed, _ := strconv.ParseUint(os.Args[1], 10, 64)
	ops, _ := strconv.Atoi(os.Args[2])
	every, _ := strconv.Atoi(os.Args[3])
	rng := rand.New(rand.NewPCG(seed, seed))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var held []io.Closer
	n := 0
	for i := 1; i <= ops; i++ {
		switch rng.IntN(9) {
		case 0:
			if f, err := os.Open("/etc/hostname"); err == nil {
				held = append(held, f)
			}
		case 1:
			if r, w, err := os.Pipe(); err == nil {
				held = append(held, r)
				w.Close()
			}
		case 2:
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				held = append(held, c)
				if s, err := ln.Accept(); err == nil {
					held = append(held, s)
				}
			}
		case 3:
			if c, err := net.ListenPacket("udp", "127.0.0.1:0"); err == nil {
				held = append(held, c)
			}
		case 4:
			cmd := exec.Command("/bin/true")
			if out, err := cmd.StdoutPipe(); err == nil && cmd.Start() == nil {
				io.Copy(io.Discard, out)
				cmd.Wait()
			}
		case 5:
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				if f, err := os.Open("/dev/zero"); err == nil {
					f.Close()
				}
			}()
			wg.Wait()
		default:
			if len(held) > 0 {
				k := rng.IntN(len(held))
				held[k].Close()
				held = append(held[:k], held[k+1:]...)
			}
		}
		if i%every == 0 {
			n++
			checkpoint(n)
		}
	}
	n++
	checkpoint(n)
	fmt.Printf("exit %d\n", os.Getpid())
	os.Exit(0)
}

func checkpoint(n int) {
	fmt.Printf("checkpoint %d %d\n", os.Getpid(), n)
	// Directed at this thread, so it stops before it returns (a signal to the
	// process may be taken by another thread while this one runs on to exit);
	// the group stop then holds the runtime's threads too.
	syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGSTOP)
}
