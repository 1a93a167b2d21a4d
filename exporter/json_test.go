package exporter

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/leaktrace/leaktrace/report"
)

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    *report.Report
		// want is r as ReadJSON gives it back: every list WriteJSON wrote as [] is
		// non-nil.
		want func(*report.Report)
	}{
		{"run", runReport(), func(r *report.Report) {
			r.Leaks[6].Stack = []report.Frame{} // the eventfd has no stack
		}},
		{"attach", attachReport(), func(r *report.Report) {
			for i := range r.Preexisting {
				r.Preexisting[i].Stack = []report.Frame{}
			}
			r.Sites[0].Exes = []string{}
			r.Sites[1].Exes = []string{}
		}},
		{"clean", cleanReport(), func(r *report.Report) {
			r.Leaks, r.Sites = []report.Leak{}, []report.Site{}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJSON(&buf, tc.r); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			got, err := ReadJSON(&buf)
			if err != nil {
				t.Fatalf("ReadJSON: %v", err)
			}
			want := tc.r
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip differs\n got: %+v\nwant: %+v", got, want)
			}
		})
	}
}

// TestJSONContract pins the field names the design promises to consumers.
func TestJSONContract(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, runReport()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	hasKeys := func(what string, v any, keys ...string) map[string]any {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, want an object", what, v)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s has no %q", what, k)
			}
		}
		return m
	}
	hasKeys("report", doc, "schema", "mode", "command", "exit_code", "started", "duration_seconds",
		"complete", "events", "notes", "leaks", "sites", "processes", "budget")
	if doc["schema"] != report.Schema || doc["complete"] != false || doc["exit_code"] != 1.0 {
		t.Errorf("schema, complete, exit_code = %v, %v, %v", doc["schema"], doc["complete"], doc["exit_code"])
	}
	hasKeys("events", doc["events"], "received", "lost")
	leak := hasKeys("leaks[1]", doc["leaks"].([]any)[1], "pid", "comm", "exe", "fd", "kind", "target",
		"age_seconds", "inherited", "site", "stack")
	frame := hasKeys("stack[0]", leak["stack"].([]any)[0], "address", "function", "file", "line", "module")
	// 0x7f3a1c0e2b10: a JSON number, exact in a float64 as every user-space address is.
	if frame["address"] != float64(0x7f3a1c0e2b10) {
		t.Errorf("address = %v, want %v", frame["address"], float64(0x7f3a1c0e2b10))
	}
	hasKeys("sites[0]", doc["sites"].([]any)[0], "key", "count", "headline", "kinds", "targets", "exes", "stack")
	hasKeys("processes[1]", doc["processes"].([]any)[1], "pid", "ppid", "comm", "leaked", "exited", "exit_code", "reconciled")
	hasKeys("budget", doc["budget"], "limit", "leaked", "exceeded")
}

func TestWriteJSONEmptyLists(t *testing.T) {
	r := &report.Report{
		Mode:        "attach",
		Leaks:       []report.Leak{{PID: 1, FD: 3, Kind: "file"}},
		Sites:       []report.Site{{Key: "k", Count: 1}},
		Preexisting: []report.Leak{{PID: 1, FD: 0, Kind: "file"}},
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "null") {
		t.Errorf("output has null:\n%s", out)
	}
	for _, want := range []string{
		`"schema": "leaktrace.report/v1.5"`,
		`"processes": []`,
		`"stack": []`,
		`"kinds": {}`,
		`"targets": []`,
		`"exes": []`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `"stack": []`); n != 3 {
		t.Errorf("%d empty stacks, want 3 (leak, site, preexisting)", n)
	}
	if r.Schema != "" || r.Leaks[0].Stack != nil || r.Processes != nil {
		t.Error("WriteJSON modified its argument")
	}

	buf.Reset()
	if err := WriteJSON(&buf, &report.Report{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"leaks": []`, `"sites": []`, `"processes": []`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("empty report lacks %s:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "preexisting") || strings.Contains(buf.String(), "budget") {
		t.Errorf("optional fields written for an empty report:\n%s", buf.String())
	}
}

func TestReadJSON(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string // "" for success
		check   func(*testing.T, *report.Report)
	}{
		{
			name: "minimal v1",
			doc:  `{"schema":"leaktrace.report/v1"}`,
			check: func(t *testing.T, r *report.Report) {
				if r.Leaks == nil || r.Sites == nil || r.Processes == nil {
					t.Errorf("required lists are nil: %+v", r)
				}
			},
		},
		{
			name: "later minor with unknown fields",
			doc:  `{"schema":"leaktrace.report/v1.4","mode":"run","new_field":{"x":1},"leaks":[{"pid":3,"fd":4,"kind":"file","stack":null,"color":"red"}]}`,
			check: func(t *testing.T, r *report.Report) {
				if r.Schema != "leaktrace.report/v1.4" || len(r.Leaks) != 1 || r.Leaks[0].FD != 4 || r.Leaks[0].Stack == nil {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name:    "next major",
			doc:     `{"schema":"leaktrace.report/v2","leaks":"changed shape"}`,
			wantErr: `unsupported report schema "leaktrace.report/v2" (this leaktrace reads leaktrace.report/v1.x)`,
		},
		{
			name:    "major with more digits",
			doc:     `{"schema":"leaktrace.report/v10"}`,
			wantErr: `unsupported report schema "leaktrace.report/v10" (this leaktrace reads leaktrace.report/v1.x)`,
		},
		{
			name:    "malformed minor",
			doc:     `{"schema":"leaktrace.report/v1.beta"}`,
			wantErr: `unsupported report schema "leaktrace.report/v1.beta"`,
		},
		{
			name:    "another tool's document",
			doc:     `{"schema":"https://json-schema.org/draft/2020-12/schema"}`,
			wantErr: `unsupported report schema "https://json-schema.org/draft/2020-12/schema"`,
		},
		{
			name:    "no schema",
			doc:     `{"leaks":[]}`,
			wantErr: `parsing report: no "schema" field, not a leaktrace report`,
		},
		{
			name:    "syntax error",
			doc:     `{"schema":"leaktrace.report/v1",]`,
			wantErr: "parsing report: invalid JSON at byte 33",
		},
		{
			name:    "wrong type",
			doc:     `{"schema":"leaktrace.report/v1","leaks":[{"fd":"seven"}]}`,
			wantErr: "parsing report: at byte",
		},
		{
			name:    "not an object",
			doc:     `[1,2]`,
			wantErr: "parsing report:",
		},
		{
			name:    "trailing garbage",
			doc:     `{"schema":"leaktrace.report/v1"} {}`,
			wantErr: "parsing report: invalid JSON",
		},
		{
			name:    "empty input",
			doc:     ``,
			wantErr: "parsing report:",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ReadJSON(strings.NewReader(tc.doc))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadJSON: %v", err)
				}
				tc.check(t, r)
				return
			}
			if err == nil {
				t.Fatalf("ReadJSON succeeded, want error %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
			}
			var se *SchemaError
			if isSchema := strings.Contains(tc.wantErr, "unsupported report schema"); errors.As(err, &se) != isSchema {
				t.Errorf("errors.As(%v, *SchemaError) = %v, want %v", err, !isSchema, isSchema)
			}
		})
	}
}

func TestReadJSONLimits(t *testing.T) {
	doc := `{"schema":"leaktrace.report/v1","notes":["` + strings.Repeat("x", 100) + `"]}`
	if _, err := readJSON(strings.NewReader(doc), int64(len(doc))); err != nil {
		t.Errorf("document of exactly the limit: %v", err)
	}
	_, err := readJSON(strings.NewReader(doc), int64(len(doc)-1))
	if err == nil || !strings.Contains(err.Error(), "reading report: larger than") {
		t.Errorf("document over the limit: got %v", err)
	}
	if got := byteSize(MaxReportSize); got != "256 MiB" {
		t.Errorf("byteSize(MaxReportSize) = %q", got)
	}
	boom := errors.New("connection reset")
	if _, err := ReadJSON(iotest.ErrReader(boom)); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "reading report: ") {
		t.Errorf("reader error: got %v", err)
	}
}

// A report with values no leaktrace writes is refused, not judged again.
func TestReadJSONRefusesAbsurdValues(t *testing.T) {
	for _, doc := range []string{
		`{"schema":"leaktrace.report/v1","exit_code":99999}`,
		`{"schema":"leaktrace.report/v1","exit_code":-7}`,
		`{"schema":"leaktrace.report/v1","sites":[{"key":"k","count":-5}]}`,
		`{"schema":"leaktrace.report/v1","sites":[{"key":"k","kinds":{"file":-1}}]}`,
		`{"schema":"leaktrace.report/v1","leaks":[{"pid":1,"age_seconds":-3}]}`,
		`{"schema":"leaktrace.report/v1","processes":[{"pid":1,"leaked":-2}]}`,
		`{"schema":"leaktrace.report/v1","budget":{"limit":-9,"leaked":0}}`,
		`{"schema":"leaktrace.report/v1","budget":{"limit":1,"leaked":0,"kinds":[{"name":"file","limit":-1}]}}`,
		`{"schema":"leaktrace.report/v1","duration_seconds":-1}`,
	} {
		if r, err := ReadJSON(strings.NewReader(doc)); err == nil {
			t.Errorf("accepted %s as %+v", doc, r)
		}
	}
	if _, err := ReadJSON(strings.NewReader(`{"schema":"leaktrace.report/v1","exit_code":137}`)); err != nil {
		t.Errorf("a command killed by SIGKILL: %v", err)
	}
}

// A file over the limit is refused from its size before it is read: a
// 300 MiB file used to be read whole first (600 MB resident).
func TestReadJSONRefusesLargeFileUnread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(300 << 20); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = ReadJSON(f)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("refusing allocated %d bytes: the file was read", grew)
	}
}

func FuzzReadJSON(f *testing.F) {
	// Seeds are kept small and compact: the fuzzer minimizes every new input it
	// finds, in time that grows with the square of the input's length.
	small := &report.Report{Mode: "attach", Complete: true,
		Leaks:     []report.Leak{{PID: 2, FD: 3, Kind: "file", Target: "/x", Site: "k", Stack: []report.Frame{{Address: 1, Function: "f", File: "a.go", Line: 2}}}},
		Sites:     []report.Site{{Key: "k", Count: 1, Growth: 1, Kinds: map[string]int{"file": 1}, Stack: []report.Frame{{Address: 1}}}},
		Processes: []report.Process{{PID: 2, Leaked: 1}, {PID: 3}},
		Budget:    &report.Budget{Limit: 1, Leaked: 1}}
	for _, r := range []*report.Report{cleanReport(), small, {}} {
		var buf, compact bytes.Buffer
		if err := WriteJSON(&buf, r); err != nil {
			f.Fatal(err)
		}
		if err := json.Compact(&compact, buf.Bytes()); err != nil {
			f.Fatal(err)
		}
		f.Add(compact.Bytes())
	}
	f.Add([]byte(`{"schema":"leaktrace.report/v1.2","leaks":[null],"sites":[{"kinds":{"file":null}}]}`))
	f.Add([]byte(`{"schema":"leaktrace.report/v1","duration_seconds":-0,"leaks":[{"fd":-1,"target":"\u001b[2J\ud800"}]}`))
	f.Add([]byte(`{"schema":"leaktrace.report/v2"}`))
	f.Add([]byte(`{"schema":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			if r != nil {
				t.Fatalf("ReadJSON returned a report and an error: %v", err)
			}
			return
		}
		// Whatever parsed must render without panicking, and survive a round trip.
		if err := WriteText(io.Discard, r, TextOptions{MaxFrames: 2}); err != nil {
			t.Fatalf("WriteText: %v", err)
		}
		if err := WriteLive(io.Discard, LiveView{Sites: r.Sites, Width: 40, Height: 8}); err != nil {
			t.Fatalf("WriteLive: %v", err)
		}
		var buf bytes.Buffer
		if err := WriteJSON(&buf, r); err != nil {
			t.Fatalf("WriteJSON of a parsed report: %v", err)
		}
		again, err := ReadJSON(&buf)
		if err != nil {
			t.Fatalf("ReadJSON of WriteJSON output: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip differs\nfirst:  %+v\nsecond: %+v", r, again)
		}
	})
}
