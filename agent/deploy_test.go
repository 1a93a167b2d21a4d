package agent

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/leaktrace/leaktrace/alert"
)

// The rules file is checked for its structure and for naming only metrics
// the collector exports; TestPromtoolRules checks it with Prometheus's own
// tool and unit tests.
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
	if d := DefaultConfig(); cfg.Thresholds != d.Thresholds || cfg.Limits != d.Limits || !cfg.Filters.Empty() || !reflect.DeepEqual(cfg.Sinks, d.Sinks) || cfg.Incidents != d.Incidents {
		t.Errorf("the shipped config differs from the defaults it documents:\n%+v\n%+v", cfg, DefaultConfig())
	}
}

// requireTool finds a tool CI installs (scripts/ci/trust.sh): a developer
// without it skips, saying why; CI (CI=true) fails.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing in CI: scripts/ci/trust.sh installs it (apt-get install %s)", name, pkg)
	}
	t.Skipf("skipping: %s not installed (apt-get install %s)", name, pkg)
	return ""
}

// promtool checks every rules file and runs every unit test of
// deploy/prometheus (*.test.yml): each alert fires when and as it should.
func TestPromtoolRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	rules, _ := filepath.Glob("../deploy/prometheus/*.rules.yml")
	tests, _ := filepath.Glob("../deploy/prometheus/*.test.yml")
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatalf("rules %v, tests %v: want both", rules, tests)
	}
	for _, args := range [][]string{append([]string{"check", "rules"}, rules...), append([]string{"test", "rules"}, tests...)} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert of the rules files has a unit test.
	tested := map[string]bool{}
	for _, f := range tests {
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`alertname: (\w+)`).FindAllStringSubmatch(string(b), -1) {
			tested[m[1]] = true
		}
	}
	for _, f := range rules {
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`- alert: (\w+)`).FindAllStringSubmatch(string(b), -1) {
			if !tested[m[1]] {
				t.Errorf("%s: alert %s has no promtool test", f, m[1])
			}
		}
	}
}

// The example Alertmanager configuration passes amtool, and in a real
// Alertmanager its inhibit rules do what it says: a process's critical alert
// silences its warning, not another process's.
func TestAlertmanagerInhibitExample(t *testing.T) {
	amtool := requireTool(t, "amtool", "prometheus-alertmanager")
	conf := "../deploy/prometheus/alertmanager.yml"
	if out, err := exec.Command(amtool, "check-config", conf).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	bin := requireTool(t, "prometheus-alertmanager", "prometheus-alertmanager")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.path="+t.TempDir(), "--web.listen-address="+addr, "--cluster.listen-address=")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	m := alert.NewManager(alert.NewQueue(alert.AlertmanagerSink{URL: base}, alert.Delivery{}, slog.New(slog.DiscardHandler)))
	m.SetLabels(map[string]string{"instance": "node1"})
	proc := func(name, level, pid string) alert.Alert {
		return alert.Alert{Name: name, Level: level, Labels: map[string]string{"pid": pid, "comm": "api"}}
	}
	m.Evaluate([]alert.Alert{proc(AlertFDExhausted, alert.LevelCritical, "42"), proc(AlertChildLeak, alert.LevelWarning, "42"),
		proc(AlertChildLeak, alert.LevelWarning, "43")}, time.Now())
	for _, q := range m.Sinks() {
		q.Close(t.Context())
	}
	type amAlert struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	var got []amAlert
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		got = nil
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		inhibited := 0
		for _, a := range got {
			inhibited += len(a.Status.InhibitedBy)
		}
		if len(got) == 3 && inhibited > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != 3 {
		t.Fatalf("alertmanager holds %d alerts, want 3: %+v", len(got), got)
	}
	for _, a := range got {
		want := a.Labels["pid"] == "42" && a.Labels["severity"] == "warning"
		if (len(a.Status.InhibitedBy) > 0) != want {
			t.Errorf("%s pid %s %s: inhibited by %v, want inhibited=%v", a.Labels["alertname"], a.Labels["pid"], a.Labels["severity"], a.Status.InhibitedBy, want)
		}
		if a.Labels["instance"] != "node1" {
			t.Errorf("alert without its instance label: %v", a.Labels)
		}
	}
}

// The DaemonSet as a cluster would take it: its namespace allows privileged
// pods under Pod Security admission, it mounts no debugfs (leaktrace needs
// none), its image is a full reference with a tag (no Docker Hub short
// name, no :latest), and its memory limit is the one the README gives.
func TestDaemonSet(t *testing.T) {
	data, err := os.ReadFile("../deploy/kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Image     string `yaml:"image"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	var ns, ds bool
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Template struct {
					Spec struct {
						HostPID    bool        `yaml:"hostPID"`
						Containers []container `yaml:"containers"`
						Volumes    []struct {
							HostPath struct {
								Path string `yaml:"path"`
							} `yaml:"hostPath"`
						} `yaml:"volumes"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		switch doc.Kind {
		case "Namespace":
			ns = true
			if doc.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
				t.Errorf("namespace labels %v: a privileged hostPID pod needs pod-security.kubernetes.io/enforce: privileged", doc.Metadata.Labels)
			}
		case "DaemonSet":
			ds = true
			spec := doc.Spec.Template.Spec
			for _, v := range spec.Volumes {
				if strings.HasPrefix(v.HostPath.Path, "/sys/kernel/debug") {
					t.Errorf("mounts debugfs (%s): leaktrace needs none", v.HostPath.Path)
				}
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers", len(spec.Containers))
			}
			c := spec.Containers[0]
			if !fullImageRef(c.Image) || strings.HasSuffix(c.Image, ":latest") {
				t.Errorf("image %q: want registry/name:version", c.Image)
			}
			for _, m := range c.VolumeMounts {
				if strings.HasPrefix(m.MountPath, "/sys/kernel/debug") {
					t.Errorf("mounts %s", m.MountPath)
				}
			}
			limit := c.Resources.Limits["memory"]
			readme, _ := os.ReadFile("../README.md")
			if limit == "" || !strings.Contains(string(readme), "limits its memory to "+limit) {
				t.Errorf("memory limit %q: the README's Agent section must say the DaemonSet \"limits its memory to %s\"", limit, limit)
			}
		}
	}
	if !ns || !ds {
		t.Fatalf("namespace %v, daemonset %v", ns, ds)
	}
}

// fullImageRef: a registry host (with a dot or a port, or localhost), a
// path, and a tag or digest.
func fullImageRef(ref string) bool {
	host, rest, ok := strings.Cut(ref, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return false
	}
	name := rest[strings.LastIndex(rest, "/")+1:]
	return strings.Contains(name, ":") || strings.Contains(rest, "@sha256:")
}

// The Dockerfile names its base images in full (podman and buildah refuse
// short names) and a .dockerignore keeps the build context to the sources.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(data), -1)
	if len(froms) == 0 {
		t.Fatal("no FROM")
	}
	for _, m := range froms {
		if !fullImageRef(m[1]) {
			t.Errorf("FROM %s: not a fully qualified image (registry/name:tag)", m[1])
		}
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatalf("no .dockerignore: %v", err)
	}
	for _, want := range []string{".git", "bin/"} {
		if !strings.Contains("\n"+string(ignore), "\n"+want+"\n") {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}
