package python

import (
	"encoding/hex"
	"testing"
)

// sampleTable is co_linetable of a 3.11 function (firstlineno 2) and the line
// of each code unit as co_positions() gives it (0: no location).
const sampleTable = "8000d80809d80809f10301090a8041e00708883182758075d80c21d00c219d05986199089c08d00c21d10c21d40c2188018801e00c108801f00603050ddd080c885ed1081cd4081cd0081cd0081cf8dd0b12f00001050df00001050df00001050dd8080c8804f00301050df8f8f8e00c0dd80c0df003010c0ff00001050f"

var sampleLines = []int{2, 3, 4, 3, 3, 3, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 8, 8, 11, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 0, 13, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 13, 0, 0, 0, 15, 16, 15, 15}

func TestLineAt(t *testing.T) {
	table, err := hex.DecodeString(sampleTable)
	if err != nil {
		t.Fatal(err)
	}
	prev := 2
	for i, want := range sampleLines {
		if want == 0 {
			want = prev // no location: the last line that had one
		}
		got, ok := lineAt(table, 2, i)
		if !ok || got != want {
			t.Errorf("unit %d: line %d ok=%v, want %d", i, got, ok, want)
		}
		prev = want
	}
	if _, ok := lineAt(table, 2, len(sampleLines)); ok {
		t.Error("an index past the table resolved")
	}
	if got, ok := lineAt(table, 2, -1); !ok || got != 2 {
		t.Errorf("a frame not started: line %d ok=%v, want the first line", got, ok)
	}
}

func TestLineAtMalformed(t *testing.T) {
	for name, table := range map[string][]byte{
		"no start bit":     {0x00},
		"long form cut":    {0x80 | locLong<<3, 0x41},
		"one-line cut":     {0x80 | locOneLine0<<3},
		"no-column cut":    {0x80 | locNoColumn<<3},
		"varint overflows": {0x80 | locNoColumn<<3, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f},
	} {
		if line, ok := lineAt(table, 1, 3); ok {
			t.Errorf("%s: resolved to line %d", name, line)
		}
	}
}

func FuzzLineAt(f *testing.F) {
	table, _ := hex.DecodeString(sampleTable)
	f.Add(table, 2, 40)
	f.Add([]byte{0xf8, 0x01}, 1, 0)
	f.Fuzz(func(t *testing.T, table []byte, first, index int) {
		lineAt(table, first, index) // must not panic
	})
}
