package alert

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type recordSink struct {
	mode    Mode
	mu      sync.Mutex
	batches [][]Alert
}

func (s *recordSink) Name() string { return "record" }
func (s *recordSink) Mode() Mode   { return s.mode }
func (s *recordSink) Send(_ context.Context, as []Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, as)
	return nil
}

func usage(pid, level string) Alert {
	return Alert{Name: "LeaktraceFDUsageHigh", Level: level, Labels: map[string]string{"pid": pid}}
}

func TestEvaluateTransitions(t *testing.T) {
	m := NewManager()
	t0 := time.Unix(1000, 0)
	steps := []struct {
		active []Alert
		want   []string // status/level of each transition
	}{
		{[]Alert{usage("1", LevelWarning)}, []string{"firing/warning"}},
		{[]Alert{usage("1", LevelWarning)}, nil},
		{[]Alert{usage("1", LevelCritical), usage("2", LevelWarning)}, []string{"firing/critical", "firing/warning"}},
		{nil, []string{"resolved/critical", "resolved/warning"}},
		{nil, nil},
	}
	for i, st := range steps {
		got := m.Evaluate(st.active, t0.Add(time.Duration(i)*time.Second))
		if len(got) != len(st.want) {
			t.Fatalf("step %d: %d transitions %+v, want %v", i, len(got), got, st.want)
		}
		for j, a := range got {
			if s := a.Status + "/" + a.Level; s != st.want[j] {
				t.Fatalf("step %d transition %d = %s, want %s", i, j, s, st.want[j])
			}
		}
		if i == 2 && !got[0].StartsAt.Equal(t0) {
			t.Fatalf("a level change restarted the alert: starts %v, want %v", got[0].StartsAt, t0)
		}
		if i == 3 && !got[0].EndsAt.Equal(t0.Add(3*time.Second)) {
			t.Fatalf("resolved alert ends %v", got[0].EndsAt)
		}
	}
	if n := m.FiringByLevel(); n[LevelWarning]+n[LevelError]+n[LevelCritical] != 0 {
		t.Fatalf("firing after all resolved: %v", n)
	}
}

func TestSendAllGetsEveryFiringAlert(t *testing.T) {
	changes := &recordSink{mode: SendChanges}
	all := &recordSink{mode: SendAll}
	qc, qa := NewQueue(changes, Delivery{}, quiet), NewQueue(all, Delivery{}, quiet)
	m := NewManager(qc, qa)
	m.Evaluate([]Alert{usage("1", LevelWarning)}, time.Now())
	m.Evaluate([]Alert{usage("1", LevelWarning)}, time.Now())
	m.Evaluate(nil, time.Now())
	for _, q := range []*Queue{qc, qa} {
		if err := q.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(changes.batches) != 2 {
		t.Fatalf("changes sink got %d batches, want 2 (fired, resolved)", len(changes.batches))
	}
	if len(all.batches) != 3 || all.batches[1][0].Status != "firing" || all.batches[2][0].Status != "resolved" {
		t.Fatalf("send-all sink got %+v", all.batches)
	}
}

func TestWebhookRetries(t *testing.T) {
	var calls atomic.Int32
	var got WebhookPayload
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	q := NewQueue(WebhookSink{URL: srv.URL}, Delivery{Attempts: 3, Backoff: time.Millisecond, Timeout: time.Second}, quiet)
	q.Offer([]Alert{usage("42", LevelError)})
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || q.Sent.Load() != 1 || q.Failed.Load() != 0 {
		t.Fatalf("calls %d sent %d failed %d", calls.Load(), q.Sent.Load(), q.Failed.Load())
	}
	if got.Version != "1" || len(got.Alerts) != 1 || got.Alerts[0].Labels["pid"] != "42" {
		t.Fatalf("payload = %+v", got)
	}
}

func TestWebhookTimeoutCountsFailure(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	q := NewQueue(WebhookSink{URL: srv.URL}, Delivery{Attempts: 2, Backoff: time.Millisecond, Timeout: 20 * time.Millisecond}, quiet)
	q.Offer([]Alert{usage("1", LevelWarning)})
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if q.Failed.Load() != 1 || q.Sent.Load() != 0 {
		t.Fatalf("sent %d failed %d, want 0, 1", q.Sent.Load(), q.Failed.Load())
	}
}

func TestAlertmanagerPayload(t *testing.T) {
	var got []map[string]any
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := usage("7", LevelCritical)
	a.StartsAt, a.EndsAt, a.Annotations = start, start.Add(time.Minute), map[string]string{"summary": "s"}
	s := AlertmanagerSink{URL: srv.URL + "/", GeneratorURL: "http://host:9808/debug/leaks"}
	if err := s.Send(context.Background(), []Alert{a}); err != nil {
		t.Fatal(err)
	}
	if path != "/api/v2/alerts" || len(got) != 1 {
		t.Fatalf("path %q, %d alerts", path, len(got))
	}
	labels := got[0]["labels"].(map[string]any)
	if labels["alertname"] != "LeaktraceFDUsageHigh" || labels["severity"] != "critical" || labels["pid"] != "7" {
		t.Fatalf("labels = %v", labels)
	}
	if got[0]["startsAt"] != "2026-01-02T03:04:05Z" || got[0]["endsAt"] != "2026-01-02T03:05:05Z" || got[0]["generatorURL"] == nil {
		t.Fatalf("alert = %v", got[0])
	}
}

func TestQueueFullCountsDrops(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	q := NewQueue(WebhookSink{URL: srv.URL}, Delivery{Capacity: 1, Timeout: 5 * time.Second}, quiet)
	for range 5 {
		q.Offer([]Alert{usage("1", LevelWarning)})
	}
	close(block)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// One batch in flight, one queued: at least three of five dropped.
	if d := q.Dropped.Load(); d < 3 || d+q.Sent.Load() != 5 {
		t.Fatalf("dropped %d sent %d of 5", d, q.Sent.Load())
	}
}
