package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
)

// Mode says what a sink is sent on each evaluation.
type Mode int

const (
	// SendChanges: only transitions (fired, level changed, resolved).
	SendChanges Mode = iota
	// SendAll: every firing alert each time, plus what resolved (as
	// Alertmanager expects clients to re-send, or it resolves them itself).
	SendAll
)

// Sink delivers a batch of alerts.
type Sink interface {
	Name() string
	Mode() Mode
	Send(ctx context.Context, alerts []Alert) error
}

// Delivery tunes a Queue.
type Delivery struct {
	Timeout  time.Duration // per attempt
	Attempts int           // tries per batch, at least 1
	Backoff  time.Duration // before the second try; doubles after
	Capacity int           // batches waiting; more are dropped and counted
}

// Queue delivers batches to one sink from its own goroutine.
type Queue struct {
	sink Sink
	d    Delivery
	log  *slog.Logger
	ch   chan []Alert
	done chan struct{}

	closeOnce sync.Once
	stop      chan struct{}

	Sent, Failed, Dropped atomic.Uint64 // batches
}

// NewQueue starts delivering to sink.
func NewQueue(sink Sink, d Delivery, log *slog.Logger) *Queue {
	d.Attempts = max(d.Attempts, 1)
	if d.Timeout <= 0 {
		d.Timeout = 5 * time.Second
	}
	if d.Capacity <= 0 {
		d.Capacity = 64
	}
	q := &Queue{sink: sink, d: d, log: log, ch: make(chan []Alert, d.Capacity), done: make(chan struct{}), stop: make(chan struct{})}
	go q.loop()
	return q
}

// Name is the sink's name.
func (q *Queue) Name() string { return q.sink.Name() }

// Offer queues a batch, or counts it dropped when the queue is full.
func (q *Queue) Offer(alerts []Alert) {
	if len(alerts) == 0 {
		return
	}
	select {
	case q.ch <- alerts:
	default:
		q.Dropped.Add(1)
		q.log.Warn("alert queue full: batch dropped", "sink", q.sink.Name(), "alerts", len(alerts))
	}
}

func (q *Queue) loop() {
	defer close(q.done)
	for batch := range q.ch {
		q.deliver(batch)
	}
}

func (q *Queue) deliver(batch []Alert) {
	backoff := q.d.Backoff
	var err error
	for try := 1; try <= q.d.Attempts; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), q.d.Timeout)
		err = q.sink.Send(ctx, batch)
		cancel()
		if err == nil {
			q.Sent.Add(1)
			return
		}
		if try == q.d.Attempts {
			break
		}
		select {
		case <-time.After(backoff):
		case <-q.stop: // shutting down: retry at once, Close's deadline bounds the flush
		}
		backoff *= 2
	}
	q.Failed.Add(1)
	q.log.Warn("alert delivery failed", "sink", q.sink.Name(), "alerts", len(batch), "attempts", q.d.Attempts, "err", err)
}

// Close delivers what is queued, waiting at most until ctx is done.
func (q *Queue) Close(ctx context.Context) error {
	q.closeOnce.Do(func() {
		close(q.stop)
		close(q.ch)
	})
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flushing alerts to %s: %w", q.sink.Name(), ctx.Err())
	}
}

// LogSink writes each transition as one structured record.
type LogSink struct{ Log *slog.Logger }

func (LogSink) Name() string { return "log" }
func (LogSink) Mode() Mode   { return SendChanges }

func (s LogSink) Send(_ context.Context, alerts []Alert) error {
	for _, a := range alerts {
		level := slog.LevelWarn
		if a.Status == "resolved" {
			level = slog.LevelInfo
		}
		s.Log.Log(context.Background(), level, "alert "+a.Status, "alert", a.Name, "level", a.Level,
			"labels", a.Labels, "annotations", a.Annotations, "starts_at", a.StartsAt, "ends_at", a.EndsAt)
	}
	return nil
}

// WebhookSink POSTs Alertmanager's webhook payload (version "4") on each
// transition, so that receivers written for Alertmanager take it as is.
type WebhookSink struct {
	URL          string
	GeneratorURL string // where an alert links back to (the agent's /debug/leaks)
	ExternalURL  string // the agent's own URL
	Client       *http.Client
}

// WebhookPayload is Alertmanager's webhook message, version 4
// (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
type WebhookPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookPayload.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // zero (0001-01-01) while firing, as Alertmanager sends it
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

func (WebhookSink) Name() string { return "webhook" }
func (WebhookSink) Mode() Mode   { return SendChanges }

func (s WebhookSink) Send(ctx context.Context, alerts []Alert) error {
	return postJSON(ctx, s.Client, s.URL, webhookPayload(alerts, s.GeneratorURL, s.ExternalURL))
}

func webhookPayload(alerts []Alert, generatorURL, externalURL string) WebhookPayload {
	p := WebhookPayload{Version: "4", GroupKey: "{}:{}", Status: "resolved", Receiver: "leaktrace",
		GroupLabels: map[string]string{}, ExternalURL: externalURL, Alerts: make([]WebhookAlert, 0, len(alerts))}
	for i, a := range alerts {
		labels := LabelsOf(a)
		annotations := a.Annotations
		if annotations == nil {
			annotations = map[string]string{}
		}
		if a.Status != "resolved" {
			p.Status = "firing"
		}
		p.Alerts = append(p.Alerts, WebhookAlert{Status: cmpOr(a.Status, "firing"), Labels: labels, Annotations: annotations,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: generatorURL,
			Fingerprint: toLabelSet(labels).Fingerprint().String()})
		if i == 0 {
			p.CommonLabels, p.CommonAnnotations = maps.Clone(labels), maps.Clone(annotations)
			continue
		}
		keepCommon(p.CommonLabels, labels)
		keepCommon(p.CommonAnnotations, annotations)
	}
	if p.CommonLabels == nil {
		p.CommonLabels, p.CommonAnnotations = map[string]string{}, map[string]string{}
	}
	return p
}

func keepCommon(common, m map[string]string) {
	for k, v := range common {
		if m[k] != v {
			delete(common, k)
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func toLabelSet(l map[string]string) model.LabelSet {
	out := make(model.LabelSet, len(l))
	for k, v := range l {
		out[model.LabelName(k)] = model.LabelValue(v)
	}
	return out
}

// LabelsOf is an alert's labels as Alertmanager keys it: its own, plus
// alertname, severity (its level) and job.
func LabelsOf(a Alert) map[string]string {
	labels := map[string]string{"alertname": a.Name, "severity": a.Level, "job": "leaktrace"}
	for k, v := range a.Labels {
		labels[k] = v
	}
	return labels
}

// AlertmanagerSink POSTs to Alertmanager's /api/v2/alerts.
type AlertmanagerSink struct {
	URL          string // Alertmanager's base URL
	GeneratorURL string // where an alert links back to (the agent's /debug/leaks)
	Client       *http.Client
}

// amAlert is Alertmanager's v2 postable alert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (AlertmanagerSink) Name() string { return "alertmanager" }
func (AlertmanagerSink) Mode() Mode   { return SendAll }

func (s AlertmanagerSink) Send(ctx context.Context, alerts []Alert) error {
	out := make([]amAlert, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, amAlert{Labels: LabelsOf(a), Annotations: a.Annotations, StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: s.GeneratorURL})
	}
	return postJSON(ctx, s.Client, strings.TrimSuffix(s.URL, "/")+"/api/v2/alerts", out)
}

func postJSON(ctx context.Context, c *http.Client, url string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding alerts: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("posting alerts: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting alerts to %s: %s", url, resp.Status)
	}
	return nil
}
