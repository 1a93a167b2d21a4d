package agent

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/leaktrace/leaktrace/alert"
)

// The rules file is checked for its structure and for naming only metrics
// the collector exports (promtool is not available in CI, and
// prometheus/prometheus is too heavy a module for one test).
func TestPrometheusRules(t *testing.T) {
	data, err := os.ReadFile("../deploy/prometheus/leaktrace.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("rules file: %v", err)
	}
	exported := map[string]bool{"up": true}
	ch := make(chan *prometheus.Desc, 64)
	NewCollector(nil).Describe(ch)
	close(ch)
	descName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		exported[descName.FindStringSubmatch(d.String())[1]] = true
	}
	metric := regexp.MustCompile(`\b(leaktrace_[a-z_]+|up)\b`)
	levels := strings.Join(alert.Levels, " ")
	if len(file.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	for _, g := range file.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q: needs alert, expr and a summary", r.Alert)
			}
			if !strings.Contains(levels, r.Labels["severity"]) || r.Labels["severity"] == "" {
				t.Errorf("rule %s: severity %q is not one of %s", r.Alert, r.Labels["severity"], levels)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for: %v", r.Alert, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("rule %s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			for _, m := range metric.FindAllString(r.Expr, -1) {
				if !exported[m] {
					t.Errorf("rule %s: %s is not a metric the agent exports", r.Alert, m)
				}
			}
		}
	}
}

func TestShippedConfigParses(t *testing.T) {
	data, err := os.ReadFile("../deploy/systemd/agent.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data, DefaultConfig())
	if err != nil {
		t.Fatalf("deploy/systemd/agent.yml: %v", err)
	}
	if d := DefaultConfig(); cfg.Thresholds != d.Thresholds || cfg.Limits != d.Limits || !cfg.Filters.Empty() || cfg.Sinks != d.Sinks || cfg.Incidents != d.Incidents {
		t.Errorf("the shipped config differs from the defaults it documents:\n%+v\n%+v", cfg, DefaultConfig())
	}
}
