//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// agentProc is a `leaktrace agent` the bench started, listening on a
// loopback port.
type agentProc struct {
	cmd    *exec.Cmd
	tail   *tailBuffer
	exited chan error
	addr   string
}

// startAgent starts `leaktrace agent` with flags (none: the whole host) and
// returns once it answers /readyz: its programs are attached, the running
// processes seeded and its first evaluation done.
func (b *bench) startAgent(flags ...string) (*agentProc, error) {
	return b.startAgentBin(b.cfg.leaktrace, flags...)
}

// startAgentBin starts the agent of the leaktrace binary bin.
func (b *bench) startAgentBin(bin string, flags ...string) (*agentProc, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	a := &agentProc{tail: &tailBuffer{}, exited: make(chan error, 1), addr: addr}
	argv := append([]string{"agent", "--web.listen-address", addr}, flags...)
	a.cmd = exec.Command(bin, argv...)
	a.cmd.Stdout, a.cmd.Stderr = a.tail, a.tail
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting leaktrace agent: %w", err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	client := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-a.exited:
			return nil, fmt.Errorf("leaktrace agent %s exited before it was ready: %v\n%s", strings.Join(flags, " "), err, a.tail.String())
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return a, nil
		}
	}
	a.stop()
	return nil, fmt.Errorf("leaktrace agent was not ready within 60s\n%s", a.tail.String())
}

func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// stop detaches the agent as a service manager would, with SIGTERM.
func (a *agentProc) stop() error {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.exited:
		if err != nil {
			return fmt.Errorf("leaktrace agent: %w\n%s", err, a.tail.String())
		}
		return nil
	case <-time.After(30 * time.Second):
		a.cmd.Process.Kill()
		<-a.exited
		return errors.New("leaktrace agent did not stop within 30s of SIGTERM")
	}
}

// freeLoopbackAddr finds a free TCP port on 127.0.0.1.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// gatedChurn is the churn run with -g: it says "ready" before its loop and
// "done" after it, each time waiting for a byte on stdin, so that counters
// are read at both ends of the loop alone, without the tracer's start-up,
// the workload's exec or the report.
type gatedChurn struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string
	tail   *tailBuffer
	exited chan error
	out    string
}

// startGated starts argv, whose stdout is the churn's (the churn directly or
// a leaktrace run around it) and whose churn writes its timing to out.
func startGated(argv []string, out string) (*gatedChurn, error) {
	g := &gatedChurn{cmd: exec.Command(argv[0], argv[1:]...), lines: make(chan string, 16),
		tail: &tailBuffer{}, exited: make(chan error, 1), out: out}
	var err error
	if g.in, err = g.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("gated churn's stdin: %w", err)
	}
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("gated churn's stdout: %w", err)
	}
	g.cmd.Stderr = g.tail
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", strings.Join(argv, " "), err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case g.lines <- sc.Text():
			default: // a report on stdout: not waited for
			}
		}
		close(g.lines)
		g.exited <- g.cmd.Wait()
	}()
	return g, nil
}

// await waits for the churn to print word.
func (g *gatedChurn) await(word string) error {
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-g.lines:
			if !ok {
				return fmt.Errorf("%s exited before %q: %v\n%s", g.cmd.Path, word, <-g.exited, g.tail.String())
			}
			if line == word {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("%s did not say %q within 60s\n%s", g.cmd.Path, word, g.tail.String())
		}
	}
}

// release lets the churn past its gate.
func (g *gatedChurn) release() error {
	if _, err := g.in.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("releasing the gated churn: %w", err)
	}
	return nil
}

// finish releases the churn from its last gate, waits for it and returns
// its timing.
func (g *gatedChurn) finish() (sample, error) {
	g.in.Close()
	select {
	case err := <-g.exited:
		if err != nil {
			return sample{}, fmt.Errorf("%s: %w\n%s", strings.Join(g.cmd.Args, " "), err, g.tail.String())
		}
	case <-time.After(60 * time.Second):
		g.kill()
		return sample{}, fmt.Errorf("%s did not finish within 60s", strings.Join(g.cmd.Args, " "))
	}
	data, err := os.ReadFile(g.out)
	if err != nil {
		return sample{}, fmt.Errorf("the gated churn left no timing: %w", err)
	}
	return parseTiming(data)
}

// kill ends a churn that a failed measurement leaves behind; its waiter
// goroutine reaps it.
func (g *gatedChurn) kill() { g.cmd.Process.Kill() }

// gatedArgs are the churn's command line for a gated run writing to out.
func (b *bench) gatedArgs(args []string, out string) []string {
	return append(append([]string{b.churn, "-g"}, args...), "-o", out)
}
