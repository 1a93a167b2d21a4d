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

	"github.com/prometheus/common/model"
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
		// Escalation resolves the old level: downstream it is another alert.
		{[]Alert{usage("1", LevelCritical), usage("2", LevelWarning)}, []string{"resolved/warning", "firing/critical", "firing/warning"}},
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
		if i == 2 && (!got[0].StartsAt.Equal(t0) || !got[0].EndsAt.Equal(t0.Add(2*time.Second)) || !got[1].StartsAt.Equal(t0.Add(2*time.Second))) {
			t.Fatalf("level change: old %v-%v, new from %v", got[0].StartsAt, got[0].EndsAt, got[1].StartsAt)
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
	if got.Version != "4" || len(got.Alerts) != 1 || got.Alerts[0].Labels["pid"] != "42" {
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

// The webhook sends Alertmanager's webhook message (version 4): a receiver
// written for Alertmanager reads every field it expects, with the values
// Alertmanager would give (fingerprint of the label set, zero endsAt while
// firing, common labels).
func TestWebhookPayloadIsAlertmanagers(t *testing.T) {
	var raw map[string]any
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := usage("7", LevelCritical), usage("8", LevelCritical)
	a.StartsAt, b.StartsAt = start, start
	a.Annotations = map[string]string{"summary": "s7"}
	b.Status, b.EndsAt = "resolved", start.Add(time.Minute)
	s := WebhookSink{URL: srv.URL, GeneratorURL: "https://node1.example:9808/debug/leaks", ExternalURL: "https://node1.example:9808/"}
	if err := s.Send(context.Background(), []Alert{a, b}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("payload lacks %q: %s", k, body)
		}
	}
	if raw["version"] != "4" || raw["status"] != "firing" || raw["externalURL"] != "https://node1.example:9808/" {
		t.Errorf("header fields: %s", body)
	}
	alerts := raw["alerts"].([]any)
	first, second := alerts[0].(map[string]any), alerts[1].(map[string]any)
	for _, k := range []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"} {
		if _, ok := first[k]; !ok {
			t.Errorf("alert lacks %q: %v", k, first)
		}
	}
	labels := first["labels"].(map[string]any)
	if labels["alertname"] != "LeaktraceFDUsageHigh" || labels["severity"] != "critical" || labels["pid"] != "7" {
		t.Errorf("labels %v", labels)
	}
	if first["startsAt"] != "2026-01-02T03:04:05Z" || first["endsAt"] != "0001-01-01T00:00:00Z" || second["status"] != "resolved" || second["endsAt"] != "2026-01-02T03:05:05Z" {
		t.Errorf("times/status: %v / %v", first, second)
	}
	// Alertmanager's fingerprint of {alertname, job, pid, severity}.
	want := model.LabelSet{"alertname": "LeaktraceFDUsageHigh", "severity": "critical", "job": "leaktrace", "pid": "7"}.Fingerprint().String()
	if first["fingerprint"] != want || first["fingerprint"] == second["fingerprint"] {
		t.Errorf("fingerprints %v, %v; want %s for the first", first["fingerprint"], second["fingerprint"], want)
	}
	common := raw["commonLabels"].(map[string]any)
	if common["severity"] != "critical" || common["pid"] != nil {
		t.Errorf("commonLabels %v", common)
	}
}

// fakeAlertmanager keeps alerts by their label set as Alertmanager does:
// each POSTed alert replaces the one of the same labels; one whose endsAt is
// past is resolved.
type fakeAlertmanager struct {
	mu     sync.Mutex
	alerts map[model.Fingerprint]time.Time // endsAt; zero while firing
}

func (f *fakeAlertmanager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var got []struct {
		Labels model.LabelSet `json:"labels"`
		EndsAt time.Time      `json:"endsAt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range got {
		f.alerts[a.Labels.Fingerprint()] = a.EndsAt
	}
}

func (f *fakeAlertmanager) firing(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ends := range f.alerts {
		if ends.IsZero() || ends.After(now) {
			n++
		}
	}
	return n
}

// warning → error → critical → the process exits: Alertmanager must be left
// with nothing firing. Before, only critical resolved; warning and error
// stayed until Alertmanager's resolve_timeout.
func TestEscalationResolvesOldLevel(t *testing.T) {
	am := &fakeAlertmanager{alerts: map[model.Fingerprint]time.Time{}}
	srv := httptest.NewServer(am)
	defer srv.Close()
	q := NewQueue(AlertmanagerSink{URL: srv.URL}, Delivery{}, quiet)
	m := NewManager(q)
	m.SetLabels(map[string]string{"instance": "node1"})
	t0 := time.Now()
	for i, level := range []string{LevelWarning, LevelError, LevelCritical} {
		m.Evaluate([]Alert{usage("1", level)}, t0.Add(time.Duration(i)*time.Second))
	}
	m.Evaluate(nil, t0.Add(3*time.Second))
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(am.alerts) != 3 {
		t.Errorf("Alertmanager saw %d distinct alerts, want 3 (one per level)", len(am.alerts))
	}
	if n := am.firing(t0.Add(4 * time.Second)); n != 0 {
		t.Errorf("%d alerts still firing in Alertmanager after the process exited", n)
	}
}

// The same pid and comm on two hosts are two alerts: the instance label
// (and external labels) are added to every alert.
func TestLabelsGiveHostIdentity(t *testing.T) {
	fire := func(instance string) Alert {
		m := NewManager()
		m.SetLabels(map[string]string{"instance": instance, "cluster": "eu1"})
		a := m.Evaluate([]Alert{usage("1", LevelWarning)}, time.Now())[0]
		return a
	}
	a, b := fire("node1"), fire("node2")
	if a.Labels["instance"] != "node1" || a.Labels["cluster"] != "eu1" || a.Labels["pid"] != "1" {
		t.Fatalf("labels %v", a.Labels)
	}
	if a.Key() == b.Key() || toLabelSet(LabelsOf(a)).Fingerprint() == toLabelSet(LabelsOf(b)).Fingerprint() {
		t.Error("two hosts' alerts have one identity")
	}
	// An alert's own label wins over an external one.
	m := NewManager()
	m.SetLabels(map[string]string{"pid": "host"})
	if got := m.Evaluate([]Alert{usage("9", LevelWarning)}, time.Now())[0].Labels["pid"]; got != "9" {
		t.Errorf("external label replaced the alert's own: pid=%s", got)
	}
}
