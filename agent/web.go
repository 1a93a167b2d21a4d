//go:build linux

package agent

import (
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
)

// The dashboard's page, script and style are in the binary: no CDN, no
// build step, nothing fetched from elsewhere (the CSP header says so too).
//
//go:embed web
var webFiles embed.FS

const dashCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

// serveDashboard serves the page at / and its data at /api/: both read the
// view the last evaluation encoded, never the tracer's state.
func (a *Agent) serveDashboard(mux *http.ServeMux, telemetryPath string) {
	sub, _ := fs.Sub(webFiles, "web")
	static := http.FileServerFS(sub)
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", dashCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/static")
		page(w, r2)
	})
	mux.HandleFunc("GET /api/dashboard", func(w http.ResponseWriter, r *http.Request) {
		d := a.dash.Load()
		if d == nil {
			http.Error(w, "not ready: the first evaluation has not run", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(d.main)
	})
	mux.HandleFunc("GET /api/process", func(w http.ResponseWriter, r *http.Request) {
		pid, err := strconv.ParseUint(r.URL.Query().Get("pid"), 10, 32)
		if err != nil {
			http.Error(w, "pid: want a process id", http.StatusBadRequest)
			return
		}
		d := a.dash.Load()
		var h *dashHistory
		if d != nil {
			h = d.history[uint32(pid)]
		}
		if h == nil {
			http.Error(w, "no such traced process", http.StatusNotFound)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, h)
	})
	mux.HandleFunc("GET /api/links", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"metrics": telemetryPath, "leaks": "/debug/leaks", "alerts": "/debug/alerts",
			"incidents": "/debug/incidents", "healthz": "/healthz", "readyz": "/readyz"})
	})
}

// serveIncidents lists the incidents kept and serves each one.
func (a *Agent) serveIncidents(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/incidents", func(w http.ResponseWriter, r *http.Request) {
		if a.incidents == nil {
			writeJSON(w, []any{})
			return
		}
		writeJSON(w, a.incidents.List())
	})
	mux.HandleFunc("GET /debug/incidents/{name}", func(w http.ResponseWriter, r *http.Request) {
		if a.incidents == nil {
			http.NotFound(w, r)
			return
		}
		inc, err := a.incidents.Read(r.PathValue("name"))
		if err != nil {
			http.Error(w, "no such incident", http.StatusNotFound)
			return
		}
		writeJSON(w, inc)
	})
}
