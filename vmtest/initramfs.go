package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// cpioEntry is one file of an initramfs.
type cpioEntry struct {
	Name         string // without a leading /
	Mode         uint32 // type and permission bits, as in stat's st_mode
	Data         []byte // regular files
	Source       string // regular files: read from this path instead of Data
	Major, Minor uint32 // device nodes
}

const (
	modeType = 0o170000
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChar = 0o020000
)

// writeCpio writes entries as a "newc" cpio archive, the format the kernel
// unpacks as an initramfs. A library would do, but the one in reach writes no
// device numbers, and /dev/console must exist before init runs for the
// kernel to give init its stdin, stdout and stderr.
func writeCpio(w io.Writer, entries []cpioEntry) error {
	bw := bufio.NewWriter(w)
	var off int64
	write := func(b []byte) error {
		n, err := bw.Write(b)
		off += int64(n)
		return err
	}
	pad := func() error {
		if r := off % 4; r != 0 {
			return write(make([]byte, 4-r))
		}
		return nil
	}
	entry := func(ino int, e cpioEntry, size int64) error {
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.Mode, 0, 0, 1, 0, size, 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
		if err := write([]byte(hdr + e.Name + "\x00")); err != nil {
			return err
		}
		return pad()
	}
	for i, e := range entries {
		data := e.Data
		if e.Source != "" {
			var err error
			if data, err = os.ReadFile(e.Source); err != nil {
				return err
			}
		}
		if e.Mode&modeType != modeReg {
			data = nil
		}
		if err := entry(i+1, e, int64(len(data))); err != nil {
			return err
		}
		if err := write(data); err != nil {
			return err
		}
		if err := pad(); err != nil {
			return err
		}
	}
	if err := entry(0, cpioEntry{Name: "TRAILER!!!"}, 0); err != nil {
		return err
	}
	return bw.Flush()
}

// guestFiles are the host-built programs the initramfs holds.
type guestFiles struct {
	Init, Leaktrace, Leaky, Compat, Mapgrow string
}

// buildGuest builds, into dir, the static guest init, the static leaktrace
// binary (unless one is given) and the leaky C test program, linked static
// so that the initramfs needs no libc.
func buildGuest(ctx context.Context, repo, dir, leaktrace string) (guestFiles, error) {
	g := guestFiles{
		Init:      filepath.Join(dir, "init"),
		Leaktrace: leaktrace,
		Leaky:     filepath.Join(dir, "leaky"),
		Compat:    filepath.Join(dir, "compat"),
		Mapgrow:   filepath.Join(dir, "mapgrow"),
	}
	goBuild := func(out, pkg string) []string {
		return []string{"go", "build", "-trimpath", "-o", out, pkg}
	}
	cmds := [][]string{goBuild(g.Init, "./vmtest/guest")}
	if g.Leaktrace == "" {
		g.Leaktrace = filepath.Join(dir, "leaktrace")
		cmds = append(cmds, goBuild(g.Leaktrace, "./cmd/leaktrace"))
	}
	// As the integration tests build it: frame pointers and debug info, so
	// that each leak's stack names its function.
	cmds = append(cmds, []string{"gcc", "-static", "-O1", "-g", "-fno-omit-frame-pointer", "-o", g.Leaky,
		"testdata/leaky-c/leaky.c", "-lpthread"})
	// 32-bit syscalls through int $0x80: this host may have 32-bit
	// emulation off, Debian's kernels have it on.
	cmds = append(cmds, []string{"gcc", "-static", "-no-pie", "-O1", "-o", g.Compat, "testdata/compat/compat.c"})
	// Memory mapped in known ways: mmap, munmap, a hole, brk (the old
	// break is read from the task at brk's entry: a CO-RE read per kernel).
	cmds = append(cmds, []string{"gcc", "-static", "-O1", "-g", "-o", g.Mapgrow, "testdata/mapgrow/mapgrow.c"})
	for _, c := range cmds {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			return g, fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return g, nil
}

// writeInitramfs writes the gzip-compressed initramfs holding the guest.
func writeInitramfs(path string, g guestFiles) error {
	var entries []cpioEntry
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "run"} {
		entries = append(entries, cpioEntry{Name: d, Mode: modeDir | 0o755})
	}
	entries = append(entries,
		cpioEntry{Name: "tmp", Mode: modeDir | 0o1777},
		cpioEntry{Name: "dev/console", Mode: modeChar | 0o600, Major: 5, Minor: 1},
		cpioEntry{Name: "dev/null", Mode: modeChar | 0o666, Major: 1, Minor: 3},
		cpioEntry{Name: "init", Mode: modeReg | 0o755, Source: g.Init},
		cpioEntry{Name: "bin/leaktrace", Mode: modeReg | 0o755, Source: g.Leaktrace},
		cpioEntry{Name: "bin/leaky", Mode: modeReg | 0o755, Source: g.Leaky},
		cpioEntry{Name: "bin/compat", Mode: modeReg | 0o755, Source: g.Compat},
		cpioEntry{Name: "bin/mapgrow", Mode: modeReg | 0o755, Source: g.Mapgrow},
		// leaky opens these two: they are its leaked files.
		cpioEntry{Name: "etc/hostname", Mode: modeReg | 0o644, Data: []byte("vmtest\n")},
		cpioEntry{Name: "etc/passwd", Mode: modeReg | 0o644, Data: []byte("root:x:0:0:root:/:/init\n")},
	)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err := writeCpio(zw, entries); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
