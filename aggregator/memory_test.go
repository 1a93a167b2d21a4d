package aggregator_test

import (
	"runtime"
	"testing"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
)

// BenchmarkOutstandingHandles measures the heap each outstanding handle costs:
// one process opens a million fds from 16 call sites and closes none, as a
// leaking process that hits a large RLIMIT_NOFILE does. The target string is
// shared, as the aggregator is not where a path's own bytes are decided.
// make bench reports the bytes/handle metric.
func BenchmarkOutstandingHandles(b *testing.B) {
	const (
		handles = 1_000_000
		pid     = 100
		files   = 0xffff_8880_0001_0000 // the table's identity, a kernel address
		openat  = 257                   // x86-64
	)
	var perHandle float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := aggregator.New(aggregator.Config{})
		e := event.Event{Type: event.FDOpen, PID: pid, TID: pid, Files: files, Syscall: openat,
			FD2: -1, Kind: event.KindFile, Target: "/dev/null"}
		for i := range handles {
			e.FD = int32(3 + i)
			e.Time = uint64(1 + i)
			e.Stack = event.StackID(1 + i%16)
			a.Apply(&e)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perHandle = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / handles
		if got := len(a.Live(pid)); got != handles {
			b.Fatalf("%d handles outstanding, want %d", got, handles)
		}
		runtime.KeepAlive(a)
	}
	b.ReportMetric(perHandle, "bytes/handle")
}
