// Package procfs reads the kernel's own truth about a process from /proc:
// its open fds, threads and identity. Everything read is parsed defensively:
// a process can vanish or change between two reads.
package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/leaktrace/leaktrace/event"
)

// Root is where proc is mounted; tests may point it elsewhere.
var Root = "/proc"

// FD is one open fd as /proc shows it.
type FD struct {
	FD     int32
	Kind   event.Kind
	Target string
}

// ErrNoProcess means the process does not exist (or no longer).
var ErrNoProcess = errors.New("no such process")

func pidDir(pid int) string { return filepath.Join(Root, strconv.Itoa(pid)) }

// Exists reports whether pid is a live process (or zombie).
func Exists(pid int) bool {
	_, err := os.Stat(pidDir(pid))
	return err == nil
}

// FDs lists pid's open fds with their kind and target.
func FDs(pid int) ([]FD, error) {
	dir := filepath.Join(pidDir(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading fds of pid %d: %w", pid, ErrNoProcess)
		}
		return nil, fmt.Errorf("reading fds of pid %d: %w", pid, err)
	}
	out := make([]FD, 0, len(ents))
	for _, e := range ents {
		n, err := strconv.ParseInt(e.Name(), 10, 32)
		if err != nil || n < 0 {
			continue
		}
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed between the two reads
		}
		kind, target := ClassifyLink(link)
		if kind == event.KindFile {
			if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.IsDir() {
				kind = event.KindDir
			}
		}
		out = append(out, FD{FD: int32(n), Kind: kind, Target: target})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FD < out[j].FD })
	return out, nil
}

// DescribeFD reads one fd's kind and target from /proc/PID/fd; false when
// it is gone (or the process is).
func DescribeFD(pid int, fd int32) (event.Kind, string, bool) {
	link, err := os.Readlink(filepath.Join(pidDir(pid), "fd", strconv.Itoa(int(fd))))
	if err != nil {
		return event.KindUnknown, "", false
	}
	k, target := ClassifyLink(link)
	return k, target, true
}

// ClassifyLink turns a /proc/PID/fd symlink target into a kind and target.
func ClassifyLink(link string) (event.Kind, string) {
	switch {
	case strings.HasPrefix(link, "socket:"):
		return event.KindSocket, link
	case strings.HasPrefix(link, "pipe:"):
		return event.KindPipe, link
	case strings.HasPrefix(link, "anon_inode:"):
		name := strings.TrimPrefix(link, "anon_inode:")
		switch name {
		case "[eventfd]":
			return event.KindEventfd, link
		case "[eventpoll]":
			return event.KindEpoll, link
		case "[timerfd]":
			return event.KindTimerfd, link
		case "[signalfd]":
			return event.KindSignalfd, link
		case "inotify":
			return event.KindInotify, link
		case "[fanotify]":
			return event.KindFanotify, link
		case "[pidfd]":
			return event.KindPidfd, link
		case "[io_uring]":
			return event.KindIOUring, link
		}
		return event.KindAnon, link
	case strings.HasPrefix(link, "/memfd:"):
		return event.KindMemfd, strings.TrimPrefix(strings.TrimSuffix(link, " (deleted)"), "/")
	}
	return event.KindFile, link
}

// Tasks lists pid's thread ids.
func Tasks(pid int) ([]uint32, error) {
	ents, err := os.ReadDir(filepath.Join(pidDir(pid), "task"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading threads of pid %d: %w", pid, ErrNoProcess)
		}
		return nil, fmt.Errorf("reading threads of pid %d: %w", pid, err)
	}
	out := make([]uint32, 0, len(ents))
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Children lists the pids whose parent is pid, from every thread's children file.
func Children(pid int) ([]uint32, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, tid := range tids {
		b, err := os.ReadFile(filepath.Join(pidDir(pid), "task", strconv.Itoa(int(tid)), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.ParseUint(f, 10, 32); err == nil {
				out = append(out, uint32(n))
			}
		}
	}
	return out, nil
}

// Stat is what leaktrace needs of /proc/PID/stat.
type Stat struct {
	PID   int
	Comm  string
	State byte
	PPID  int
	Flags uint64 // the kernel's PF_* flags; 0 when the line is short
}

// pfKthread is the kernel's PF_KTHREAD flag.
const pfKthread = 0x00200000

// KernelThread reports whether the task is a kernel thread: it has no user
// space, makes no syscalls and holds no fds of its own.
func (s Stat) KernelThread() bool { return s.Flags&pfKthread != 0 }

// Gone reports whether the task has exited: a zombie (exited, not yet
// reaped) or dead.
func (s Stat) Gone() bool { return s.State == 'Z' || s.State == 'X' || s.State == 'x' }

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(pidDir(pid), "stat"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Stat{}, fmt.Errorf("reading pid %d: %w", pid, ErrNoProcess)
		}
		return Stat{}, fmt.Errorf("reading pid %d: %w", pid, err)
	}
	st, err := ParseStat(string(b))
	if err != nil {
		return Stat{}, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// ParseStat parses the text of /proc/PID/stat. The comm field may hold
// spaces and parentheses: it ends at the last ')'.
func ParseStat(s string) (Stat, error) {
	open := strings.IndexByte(s, '(')
	closeIdx := strings.LastIndexByte(s, ')')
	if open < 1 || closeIdx < open {
		return Stat{}, errors.New("malformed stat: no comm")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil || pid <= 0 {
		return Stat{}, fmt.Errorf("malformed stat pid %q", strings.TrimSpace(s[:open]))
	}
	rest := strings.Fields(s[closeIdx+1:])
	if len(rest) < 2 || len(rest[0]) != 1 || !isLetter(rest[0][0]) {
		return Stat{}, errors.New("malformed stat: no state or ppid")
	}
	ppid, err := strconv.Atoi(rest[1])
	if err != nil {
		return Stat{}, fmt.Errorf("malformed stat ppid: %w", err)
	}
	st := Stat{PID: pid, Comm: s[open+1 : closeIdx], State: rest[0][0], PPID: ppid}
	if len(rest) > 6 {
		st.Flags, _ = strconv.ParseUint(rest[6], 10, 64)
	}
	return st, nil
}

// Tgid returns the process (thread group) a task id belongs to: pid itself
// for a process's main thread, its process's pid for any other thread.
func Tgid(pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join(pidDir(pid), "status"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("reading pid %d: %w", pid, ErrNoProcess)
		}
		return 0, fmt.Errorf("reading pid %d: %w", pid, err)
	}
	return ParseTgid(string(b))
}

// ParseTgid finds the "Tgid:" line of /proc/PID/status text.
func ParseTgid(s string) (int, error) {
	for line := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("malformed Tgid %q", strings.TrimSpace(v))
			}
			return n, nil
		}
	}
	return 0, errors.New("no Tgid line")
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// Exe returns the path of pid's executable ("" when unreadable).
func Exe(pid int) string {
	p, err := os.Readlink(filepath.Join(pidDir(pid), "exe"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(p, " (deleted)")
}

// NoFileLimit returns pid's soft RLIMIT_NOFILE from /proc/PID/limits.
func NoFileLimit(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(pidDir(pid), "limits"))
	if err != nil {
		return 0, fmt.Errorf("reading limits of pid %d: %w", pid, err)
	}
	return ParseNoFileLimit(string(b))
}

// ParseNoFileLimit finds the soft "Max open files" value in limits text.
func ParseNoFileLimit(s string) (uint64, error) {
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
		if len(f) < 1 {
			break
		}
		if f[0] == "unlimited" {
			return ^uint64(0), nil
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed max open files %q: %w", f[0], err)
		}
		return n, nil
	}
	return 0, errors.New("no max open files line")
}
