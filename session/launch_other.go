//go:build !linux

package session

import (
	"errors"
	"os/exec"
)

// Start needs ptrace and close_range: leaktrace traces Linux programs only.
func (s *Session) Start(argv []string) (*exec.Cmd, error) {
	return nil, errors.New("leaktrace runs commands on Linux only")
}
