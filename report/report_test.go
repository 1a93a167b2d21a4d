package report

import "testing"

func TestRootPID(t *testing.T) {
	r := &Report{Processes: []Process{{PID: 12, PPID: 10}, {PID: 10, PPID: 1}, {PID: 13, PPID: 12}}}
	if got := r.RootPID(); got != 10 {
		t.Fatalf("RootPID = %d, want 10 (the process whose parent was not traced)", got)
	}
	if got := (&Report{}).RootPID(); got != 0 {
		t.Fatalf("RootPID of an empty report = %d, want 0", got)
	}
}

func TestHasFunction(t *testing.T) {
	stack := []Frame{{Function: "open"}, {Function: "leak_file"}}
	if !HasFunction(stack, "leak_file") || HasFunction(stack, "main") {
		t.Fatal("HasFunction does not match the frames' functions")
	}
}
