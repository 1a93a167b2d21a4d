//go:build linux

package session

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Start runs argv with stdio, environment and exit status passed through,
// traced from its first instruction: the child stops right after its exec
// (ptrace), enters the filter and /proc is read while it is stopped, and only
// then does it run. It inherits no fd of leaktrace's but 0, 1 and 2.
func (s *Session) Start(argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command given")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrCommandNotFound, argv[0])
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Args = argv
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if s.opts.Stdout != nil {
		cmd.Stdout = s.opts.Stdout
	}
	if s.opts.Stderr != nil {
		cmd.Stderr = s.opts.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}

	// Whatever leaktrace itself inherited without close-on-exec (a CI
	// runner's fds, a shell's) must not reach the command: Go's exec only
	// rearranges 0, 1 and 2.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return nil, fmt.Errorf("marking leaktrace's fds close-on-exec: %w", err)
	}

	// ptrace requests must come from the thread that forked the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOEXEC) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w: %s: %v", ErrCommandNotExecutable, argv[0], err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCommandNotFound, argv[0], err)
	}
	pid := cmd.Process.Pid
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("waiting for %s to stop after exec: %w", argv[0], err)
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("%s did not stop after exec (status %v)", argv[0], ws)
	}
	addErr := s.Add(pid)
	if err := syscall.PtraceDetach(pid); err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("releasing %s: %w", argv[0], err)
	}
	if addErr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("tracing %s: %w", argv[0], addErr)
	}
	return cmd, nil
}
