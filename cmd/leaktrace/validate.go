//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/leaktrace/leaktrace/agent"
	"github.com/leaktrace/leaktrace/tracer"
)

// Every flag is checked here, before anything is loaded: a bad value is one
// line and exit 125, never a BPF load failure or a panic after it.

const (
	// maxRingBufferBytes bounds --ring-buffer-size: the kernel takes a u32,
	// and a GiB of locked memory is already far more than any run needs.
	maxRingBufferBytes = 1 << 30
	// minInterval is the floor of --interval: below it a refresh or an
	// evaluation loop spins a core for nothing.
	minInterval = 100 * time.Millisecond
)

func usagef(format string, args ...any) error {
	return &userError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// validateTracer checks the kernel-side sizes shared by every tracing command.
func validateTracer(ringBufferSize, stackBytes int, pairWindow time.Duration) error {
	page := os.Getpagesize()
	if ringBufferSize < page || ringBufferSize > maxRingBufferBytes || ringBufferSize&(ringBufferSize-1) != 0 {
		return usagef("bad --ring-buffer-size %d: want a power of two from %d (a page) to %d, such as %d",
			ringBufferSize, page, maxRingBufferBytes, tracer.DefaultRingBufferBytes)
	}
	if stackBytes < 0 || stackBytes > tracer.MaxStackBytes {
		return usagef("bad --stack-bytes %d: want 0 to %d (0 copies no stack)", stackBytes, tracer.MaxStackBytes)
	}
	if pairWindow != 0 && (pairWindow < time.Millisecond || pairWindow > time.Minute) {
		return usagef("bad --pair-window %s: want 0 (send every record) or 1ms to 1m, such as %s", pairWindow, tracer.DefaultPairWindow)
	}
	return nil
}

func (f *traceFlags) validate() error {
	if err := validateTracer(f.ringBufferSize, f.stackBytes, f.pairWindow); err != nil {
		return err
	}
	if f.maxFrames < 1 {
		return usagef("bad --max-frames %d: want 1 or more", f.maxFrames)
	}
	return nil
}

func (f *attachFlags) validate() error {
	if err := f.traceFlags.validate(); err != nil {
		return err
	}
	switch {
	case f.duration < 0:
		return usagef("bad --duration %s: want 0 (until Ctrl-C or exit) or more, such as 5m", f.duration)
	case f.minAge < 0:
		return usagef("bad --min-age %s: want a duration >= 0, such as 10s", f.minAge)
	case f.interval < minInterval:
		return usagef("bad --interval %s: want at least %s, such as 1s", f.interval, minInterval)
	}
	return checkOutputs(f.jsonPath)
}

// reservedPaths are the agent's own endpoints: metrics cannot share them.
var reservedPaths = []string{"/", "/healthz", "/readyz", "/debug/leaks", "/debug/alerts"}

func (f *agentFlags) validate() error {
	if err := validateTracer(f.ringBuffer, f.stackBytes, f.pairWindow); err != nil {
		return err
	}
	if f.interval < minInterval {
		return usagef("bad --interval %s: want at least %s, such as 5s", f.interval, minInterval)
	}
	p := f.telemetryPath
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " {}?#") {
		return usagef("bad --web.telemetry-path %q: want an absolute URL path such as /metrics", p)
	}
	for _, r := range reservedPaths {
		if p == r {
			return usagef("bad --web.telemetry-path %q: the agent serves %s itself; use /metrics", p, strings.Join(reservedPaths, ", "))
		}
	}
	if len(f.listen) == 0 {
		return usagef("bad --web.listen-address: give at least one address, such as localhost:9808")
	}
	if u := f.externalURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return usagef("bad --web.external-url %q: want an absolute http(s) URL such as https://node1.example:9808/", u)
		}
	}
	labels := map[string]string{}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return usagef("bad --alert.external-label %q: want NAME=VALUE, such as cluster=eu1", l)
		}
		if _, dup := labels[k]; dup {
			return usagef("bad --alert.external-label %q: %s is given twice", l, k)
		}
		labels[k] = v
	}
	if err := agent.ValidateLabels(labels); err != nil {
		return usagef("bad --alert.external-label: %v", err)
	}
	return nil
}

// checkOutputs makes sure every report file can be written, before anything
// is traced: it creates (or opens for append) each one and removes what it
// created. A report that cannot be written is found out now, not after CMD ran.
func checkOutputs(paths ...string) error {
	seen := map[string]string{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		abs, _ := filepath.Abs(p)
		if prev, ok := seen[abs]; ok {
			return usagef("cannot write two reports to one file (%s and %s): give each its own", prev, p)
		}
		seen[abs] = p
		if err := probeWritable(p); err != nil {
			return usagef("cannot write %s: %v (check the directory and its permissions)", p, err)
		}
	}
	return nil
}

func probeWritable(p string) error {
	if fi, err := os.Stat(p); err == nil {
		if fi.IsDir() {
			return errors.New("it is a directory")
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return unwrapPath(err)
		}
		return f.Close()
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return unwrapPath(err)
	}
	f.Close()
	return os.Remove(p)
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
