package agent

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The README's metric and alert tables name everything the agent exports
// and fires: a metric or alert added without a line there fails here.
func TestReadmeListsMetricsAndAlerts(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	ch := make(chan *prometheus.Desc, 128)
	NewCollector(nil).Describe(ch)
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		name := fq.FindStringSubmatch(d.String())[1]
		if !strings.Contains(readme, "`"+name) {
			t.Errorf("README does not list the metric %s", name)
		}
	}
	for _, a := range []string{AlertFDUsage, AlertFDExhausted, AlertHandleGrowth, AlertThreadLeak, AlertChildLeak, AlertMemoryHigh, AlertMemoryGrowth} {
		if !strings.Contains(readme, "`"+a+"`") {
			t.Errorf("README does not list the alert %s", a)
		}
	}
}
