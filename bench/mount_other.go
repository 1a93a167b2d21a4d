//go:build !linux

package main

import "errors"

// The bench measures Linux tracing; elsewhere it only has to build.
func mountTracefsAt(string) error { return errors.New("tracefs exists only on Linux") }
