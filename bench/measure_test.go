package main

import "testing"

func TestReadyMillis(t *testing.T) {
	out := "time=2026-12-07T08:49:04.334Z level=DEBUG msg=\"tracer ready\" since_start_ms=500 load_ms=150\nleaktrace: no leaks\n"
	if ms, ok := readyMillis(out); !ok || ms != 500 {
		t.Fatalf("readyMillis = %d, %v; want 500, true", ms, ok)
	}
	if _, ok := readyMillis("leaktrace: no leaks\n"); ok {
		t.Fatal("found a ready line in output without one")
	}
}
