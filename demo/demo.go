// Package demo is the small leaking workload that `leaktrace demo` traces, so
// that a fresh machine shows a real report with nothing else installed. It
// leaks in the ways the people this tool is for were hurt by: files opened
// and forgotten, a connection never closed, a pipe to a helper never closed,
// and a child process never waited for.
package demo

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Run does the leaking work and returns; the leaks live until exit.
func Run() error {
	dir, err := os.MkdirTemp("", "leaktrace-demo-")
	if err != nil {
		return fmt.Errorf("making demo dir: %w", err)
	}
	defer os.RemoveAll(dir)

	if err := readAllConfigs(dir); err != nil {
		return err
	}
	if err := loadSettings(dir, 3); err != nil {
		return err
	}
	if err := connectBackend(); err != nil {
		return err
	}
	if err := startHelper(); err != nil {
		return err
	}
	// Let the helper exit so that it is a zombie, not a running orphan.
	time.Sleep(200 * time.Millisecond)
	fmt.Println("demo: workload done")
	return nil
}

// readAllConfigs opens and closes every file it reads: no leak.
//
//go:noinline
func readAllConfigs(dir string) error {
	for i := range 20 {
		p := filepath.Join(dir, fmt.Sprintf("conf-%d.ini", i))
		if err := os.WriteFile(p, []byte("k=v\n"), 0o600); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// settingsFiles is where loadSettings keeps what it forgot to close.
var settingsFiles []*os.File

// loadSettings leaks one file per call: the bug is the missing Close.
//
//go:noinline
func loadSettings(dir string, n int) error {
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("settings-%d.json", i))
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		settingsFiles = append(settingsFiles, f)
	}
	return nil
}

var conns []net.Conn

// connectBackend leaks a TCP connection (both ends, as it is its own server).
//
//go:noinline
func connectBackend() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("dialing: %w", err)
	}
	s, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accepting: %w", err)
	}
	conns = append(conns, c, s)
	return nil
}

var helpers []*exec.Cmd

// startHelper starts a child with a pipe to its stdin and never closes the
// pipe nor waits for the child: a pipe leak and a zombie.
//
//go:noinline
func startHelper() error {
	cmd := exec.Command("/bin/true")
	if _, err := cmd.StdinPipe(); err != nil {
		return fmt.Errorf("helper pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting helper: %w", err)
	}
	helpers = append(helpers, cmd)
	return nil
}
