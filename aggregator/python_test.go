package aggregator_test

import (
	"testing"

	"github.com/leaktrace/leaktrace/aggregator"
	"github.com/leaktrace/leaktrace/event"
)

// shutdown marks a close event as made during Python interpreter shutdown.
func shutdown(e event.Event) event.Event { e.Flags |= event.FlagPyShutdown; return e }

// finalizing marks an open as made once the interpreter began to finalize.
func finalizing(e event.Event) event.Event { e.Flags |= event.FlagPyFinalizing; return e }

func TestPythonShutdownClose(t *testing.T) {
	atShutdown := func(l leak) leak { l.Reason = aggregator.ReasonPyShutdown; return l }
	runCases(t, []tcase{
		{
			name: "a close by interpreter shutdown is a leak",
			events: []event.Event{
				openFile(P, 3, "/tmp/kept", 1, 10),
				openFile(P, 4, "/tmp/closed", 2, 12),
				closeOwn(P, 4, 15), // the program's own close (or an atexit handler's)
				shutdown(closeOwn(P, 3, 20)),
				dies(P, 30),
			},
			leaks: []leak{atShutdown(fileLeak(P, 3, "/tmp/kept", 1, 10, 20))},
			procs: []aggregator.ProcessInfo{{PID: P, Exited: true, Leaked: 1}},
		},
		{
			name: "a handle opened once finalization began and closed by it balances",
			events: []event.Event{
				openFile(P, 3, "/tmp/kept", 1, 10),
				finalizing(openFile(P, 4, "/proc/self/status", 2, 18)), // an exit-time C destructor's
				shutdown(closeOwn(P, 4, 19)),
				shutdown(closeOwn(P, 3, 20)),
				dies(P, 30),
			},
			leaks: []leak{atShutdown(fileLeak(P, 3, "/tmp/kept", 1, 10, 20))},
			procs: []aggregator.ProcessInfo{{PID: P, Exited: true, Leaked: 1}},
		},
		{
			name: "a handle opened during finalization and never closed is still held at exit",
			events: []event.Event{
				finalizing(openFile(P, 4, "/tmp/late", 2, 18)),
				dies(P, 30),
			},
			leaks: []leak{fileLeak(P, 4, "/tmp/late", 2, 18, 30)},
		},
		{
			name: "close_range at shutdown reports each open fd once",
			events: []event.Event{
				openFile(P, 3, "/tmp/a", 1, 10),
				openFile(P, 5, "/tmp/b", 1, 11),
				shutdown(closeRange(P, 3, 10, 0, 20)),
				dies(P, 30),
			},
			leaks: []leak{atShutdown(fileLeak(P, 3, "/tmp/a", 1, 10, 20)), atShutdown(fileLeak(P, 5, "/tmp/b", 1, 11, 20))},
		},
		{
			name: "stdio closed at shutdown never counts",
			events: []event.Event{
				openFile(P, 1, "/tmp/out", 1, 10),
				shutdown(closeOwn(P, 1, 20)),
				dies(P, 30),
			},
			leaks: []leak{},
		},
	})
}
