package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leaktrace/leaktrace/alert"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
thresholds:
  fd_usage_warn_percent: 50
  growth_window: 2m
filters:
  comms: [nginx]
  cgroups: [/system.slice/nginx.service]
sinks:
  webhook: {url: "http://hooks.example:8080/leaks", timeout: 3s, attempts: 4}
limits:
  top_sites: 5
`), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Thresholds.FDWarn != 50 || cfg.Thresholds.FDError != 85 || cfg.Thresholds.GrowthWindow != 2*time.Minute {
		t.Fatalf("thresholds = %+v", cfg.Thresholds)
	}
	if cfg.Sinks.Webhook == nil || cfg.Sinks.Webhook.Attempts != 4 || cfg.Sinks.Webhook.Timeout != 3*time.Second {
		t.Fatalf("webhook = %+v", cfg.Sinks.Webhook)
	}
	if cfg.Limits.TopSites != 5 || cfg.Limits.MaxProcesses != 1000 || cfg.Filters.Comms[0] != "nginx" {
		t.Fatalf("config = %+v", cfg)
	}
}

func TestParseConfigErrorsNameTheField(t *testing.T) {
	tests := map[string]string{
		"thresholds:\n  fd_usage_wrn_percent: 50\n":                          "fd_usage_wrn_percent",
		"thresholds:\n  fd_usage_warn_percent: 90\n":                         "fd_usage_warn_percent (90) <= fd_usage_error_percent",
		"thresholds:\n  fd_usage_critical_percent: 120\n":                    "thresholds.fd_usage_critical_percent",
		"thresholds:\n  growth_window: soon\n":                               "time.Duration",
		"sinks:\n  webhook: {url: \"ftp://x\"}\n":                            "sinks.webhook.url",
		"filters:\n  comms: [averyveryverylongname]\n":                       "filters.comms",
		"filters:\n  cgroups: [system.slice]\n":                              "filters.cgroups",
		"limits:\n  top_sites: 0\n":                                          "limits.top_sites",
		"threshold: {}\n":                                                    "field threshold not found",
		"thresholds: [1, 2]\n":                                               "cannot unmarshal",
		"filters:\n  pids: [-3]\n":                                           "filters.pids",
		"sinks:\n  alertmanager: {url: \"http://am:9093\", attempts: 100}\n": "sinks.alertmanager",
	}
	for in, want := range tests {
		_, err := ParseConfig([]byte(in), DefaultConfig())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%q) = %v, want an error naming %q", in, err, want)
		}
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(p, []byte("limits:\n  max_stacks: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(p, DefaultConfig())
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "limits.max_stacks") {
		t.Fatalf("LoadConfig = %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yml"), DefaultConfig()); err == nil {
		t.Fatal("a missing file loaded")
	}
}

func TestEmptyConfigIsDefault(t *testing.T) {
	cfg, err := ParseConfig(nil, DefaultConfig())
	if err != nil || cfg.Thresholds != DefaultConfig().Thresholds {
		t.Fatalf("empty file: %+v, %v", cfg, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("thresholds:\n  fd_usage_warn_percent: 60\nfilters:\n  comms: [a]\n"))
	f.Add([]byte("sinks:\n  webhook: {url: \"http://x/\", timeout: 1s}\nlimits: {top_sites: 3}\n"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, DefaultConfig())
		if err != nil {
			return
		}
		// Whatever parses must be valid and usable.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
	})
}

// Both sinks take Prometheus's http_config (auth, TLS, proxy, headers) and
// every alert carries instance and the external labels.
func TestSinksHTTPConfigAndLabels(t *testing.T) {
	type seen struct{ path, user, pass, header string }
	got := make(chan seen, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"cluster":"eu1"`) || !strings.Contains(string(body), `"instance":"node7"`) {
			t.Errorf("%s: labels missing from %s", r.URL.Path, body)
		}
		got <- seen{r.URL.Path, u, p, r.Header.Get("X-Scope-OrgID")}
	}))
	defer srv.Close()
	cfg, err := ParseConfig([]byte(`
sinks:
  external_labels: {cluster: eu1, instance: node7}
  webhook:
    url: "`+srv.URL+`/hook"
    http_config:
      basic_auth: {username: hook, password: s3cret}
  alertmanager:
    url: "`+srv.URL+`"
    http_config:
      basic_auth: {username: am, password: pw}
      http_headers:
        X-Scope-OrgID: {values: [tenant1]}
`), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := testAgent(t, cfg)
	a.alerts.SetLabels(a.alertLabels(cfg))
	a.alerts.Evaluate([]alert.Alert{{Name: AlertFDUsage, Level: alert.LevelWarning, Labels: map[string]string{"pid": "1"}}}, time.Now())
	want := map[string]seen{"/hook": {"/hook", "hook", "s3cret", ""}, "/api/v2/alerts": {"/api/v2/alerts", "am", "pw", "tenant1"}}
	for range 2 {
		select {
		case s := <-got:
			if want[s.path] != s {
				t.Errorf("%s: got %+v, want %+v", s.path, s, want[s.path])
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a sink sent nothing")
		}
	}

	for _, bad := range []string{
		"sinks:\n  webhook:\n    url: http://x\n    http_config: {basic_auth: {username: a}, bearer_token: b}\n",
		"sinks:\n  alertmanager:\n    url: http://x\n    http_config: {no_such_field: 1}\n",
		"sinks:\n  external_labels: {\"0bad\": x}\n",
		"sinks:\n  external_labels: {severity: x}\n",
	} {
		if _, err := ParseConfig([]byte(bad), DefaultConfig()); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}
