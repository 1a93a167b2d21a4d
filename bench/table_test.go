package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/leaktrace/leaktrace/aggregator
BenchmarkApplyOpenClose-2   	 7566890	       161.5 ns/op	  12386521 events/s	      64 B/op	       1 allocs/op
BenchmarkOutstandingHandles 	       1	 866510618 ns/op	       101.8 bytes/handle	195558104 B/op	 1008225 allocs/op
PASS
`
	tests := []struct {
		name string
		want map[string]float64
	}{
		{"BenchmarkApplyOpenClose", map[string]float64{"ns/op": 161.5, "events/s": 12386521, "B/op": 64, "allocs/op": 1}},
		{"BenchmarkOutstandingHandles", map[string]float64{"ns/op": 866510618, "bytes/handle": 101.8, "B/op": 195558104, "allocs/op": 1008225}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGoBench(strings.NewReader(out), tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := parseGoBench(strings.NewReader(out), "BenchmarkApply"); err == nil {
		t.Error("a name's prefix matched another benchmark")
	}
}

func TestMedian(t *testing.T) {
	ms := func(d ...int) []sample {
		var ss []sample
		for i, v := range d {
			ss = append(ss, sample{loop: time.Duration(v) * time.Millisecond, lost: uint64(i)})
		}
		return ss
	}
	tests := []struct {
		in       []sample
		loop     time.Duration
		lostMost uint64
	}{
		{ms(5), 5 * time.Millisecond, 0},
		{ms(9, 3, 5), 5 * time.Millisecond, 2},
		{ms(9, 3, 5, 7), 5 * time.Millisecond, 3},
	}
	for _, tt := range tests {
		st := median(tt.in)
		if st.loop != tt.loop || st.worst.lost != tt.lostMost || len(st.runs) != len(tt.in) {
			t.Errorf("median(%v) = loop %v worst lost %d runs %d, want loop %v lost %d", tt.in, st.loop, st.worst.lost, len(st.runs), tt.loop, tt.lostMost)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 200000: "200,000", 1000000: "1,000,000", -1500: "-1,500"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestResultsOutput(t *testing.T) {
	r := &results{Date: "2026-01-02", Kernel: "6.18.0", CPUs: 2, VM: true, Command: "make bench", Samples: map[string][]float64{}}
	r.add("ratio a|b", 1.2, "x", "1.20x", &targetRatio)
	r.add("ratio c", 4, "x", "4.00x", &targetRatio)
	r.section("Agent | host")
	r.add("peer", 9, "x", "9.00x", nil)
	r.skip("bpftrace", "not installed", nil)
	r.note("a note")

	var b strings.Builder
	if err := r.writeMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "Measured 2026-01-02 with `make bench` on a 2-core VM, Linux 6.18.0.\n\n" +
		"| measure | result | target | |\n| --- | --- | --- | --- |\n" +
		"| ratio a\\|b | 1.20x | ≤ 1.3x | met |\n" +
		"| ratio c | 4.00x | ≤ 1.3x | **not met** |\n" +
		"| **Agent \\| host** | | | |\n" +
		"| peer | 9.00x | — |  |\n" +
		"| bpftrace | skipped: not installed | — | skipped |\n" +
		"\n- a note\n"
	if b.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", b.String(), want)
	}

	path := filepath.Join(t.TempDir(), "out", "results.json")
	if err := r.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back results
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 5 || back.Rows[1].Met == nil || *back.Rows[1].Met || back.Rows[2].Section != "Agent | host" ||
		back.Rows[2].Measure != "" || back.Rows[3].Met != nil {
		t.Errorf("rows read back: %+v", back.Rows)
	}
}

func TestTailBuffer(t *testing.T) {
	var tb tailBuffer
	tb.Write([]byte("start "))
	tb.Write([]byte(strings.Repeat("x", 9000)))
	tb.Write([]byte(" end"))
	s := tb.String()
	if len(s) != 8<<10 || !strings.HasSuffix(s, "x end") || strings.Contains(s, "start") {
		t.Errorf("tail of %d bytes, suffix %q", len(s), s[len(s)-5:])
	}
}
