//go:build linux

package session

import "errors"

// ErrCommandNotFound wraps a command that cannot be found.
var ErrCommandNotFound = errors.New("command not found")

// ErrCommandNotExecutable wraps a command that exists but cannot be run:
// no execute permission, a directory, a noexec mount, not a program.
var ErrCommandNotExecutable = errors.New("permission denied")
