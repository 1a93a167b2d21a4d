package main

import (
	"os"

	"golang.org/x/sys/unix"
)

func terminalSize(f *os.File) (int, int) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 100, 30
	}
	return int(ws.Col), int(ws.Row)
}
