//go:build linux

package agent

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the agent's endpoints: metrics at telemetryPath, /healthz,
// /readyz, /debug/leaks (the live report as JSON), /debug/alerts,
// /debug/incidents, and the dashboard at / with its data under /api/.
func (a *Agent) Handler(telemetryPath, version string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(a),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: namespace + "_agent"}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info", Help: "leaktrace's version.",
			ConstLabels: prometheus.Labels{"version": version}}, func() float64 { return 1 }),
	)
	mux := http.NewServeMux()
	mux.Handle(telemetryPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{a}, ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !a.Healthy() {
			http.Error(w, "evaluations stalled", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !a.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/debug/leaks", func(w http.ResponseWriter, r *http.Request) {
		rep, err := a.Report()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, rep)
	})
	mux.HandleFunc("/debug/alerts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.Firing())
	})
	a.serveIncidents(mux)
	a.serveDashboard(mux, telemetryPath)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// slogPrinter lets promhttp log through the agent's logger.
type slogPrinter struct{ a *Agent }

func (p slogPrinter) Println(v ...any) { p.a.log.Warn("serving metrics", "err", fmt.Sprint(v...)) }
