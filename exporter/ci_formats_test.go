package exporter

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/leaktrace/leaktrace/report"
)

// policyReport is runReport judged by a policy: the parquet site suppressed,
// the spawn site in the baseline, a per-kind budget.
func policyReport() *report.Report {
	r := runReport()
	for i := range r.Leaks {
		l := &r.Leaks[i]
		switch {
		case l.Site == "parquet":
			l.NotCounted, l.SuppressedBy = report.NotCountedSuppressed, "leaktrace.supp:3: fun:io.*"
		case l.Inherited:
			l.NotCounted = report.NotCountedInherited
		case l.Site == "spawn":
			l.NotCounted = report.NotCountedBaseline
		default:
			l.Counted = true
		}
	}
	r.Sites = []report.Site{
		{Key: "connect", Count: 3, Headline: pyConnect[2], Kinds: map[string]int{"socket": 3}, Stack: pyConnect, BaselineState: "new"},
		{Key: "", Count: 1, Kinds: map[string]int{"eventfd": 1}, Stack: []report.Frame{}, BaselineState: "new"},
		{Key: "parquet", Uncounted: 1, Headline: pyParquet[1], Kinds: map[string]int{}, Stack: pyParquet, BaselineState: "new"},
		{Key: "spawn", Uncounted: 1, Headline: pyPipe[1], Kinds: map[string]int{}, Stack: pyPipe, BaselineState: "unchanged", BaselineCount: 1},
	}
	r.Budget = &report.Budget{Limit: -1, Leaked: 4, Exceeded: true,
		Kinds: []report.BudgetLimit{{Name: "socket", Limit: 0, Leaked: 3, Exceeded: true}}}
	return r
}

func TestWritePprof(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePprof(&buf, policyReport()); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("pprof cannot parse it: %v", err)
	}
	total := map[string]int64{}
	for _, s := range p.Sample {
		total[s.Label["kind"][0]] += s.Value[0]
		if len(s.Location) == 0 {
			t.Errorf("sample without a stack: %v", s.Label)
		}
	}
	// Only counted leaks: 3 sockets and the stackless eventfd.
	if len(total) != 2 || total["socket"] != 3 || total["eventfd"] != 1 {
		t.Errorf("samples by kind %v, want socket=3 eventfd=1", total)
	}

	// The real consumer: go tool pprof ranks db.connect by what leaked under it.
	path := filepath.Join(t.TempDir(), "leaks.pb.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go toolchain to run go tool pprof")
	}
	out, err := exec.Command(goBin, "tool", "pprof", "-top", "-cum", path).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, out)
	}
	text := string(out)
	t.Logf("go tool pprof -top -cum:\n%s", text)
	for _, want := range []string{"Type: leaked_handles", "db.connect", "handler.serve", "[no stack]"} {
		if !strings.Contains(text, want) {
			t.Errorf("go tool pprof -top output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "io.read_parquet") {
		t.Errorf("a suppressed site is in the profile:\n%s", text)
	}
}

func TestWriteSARIFIsValid(t *testing.T) {
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatalf("compiling the SARIF schema: %v", err)
	}
	// The schema rejects what it should: a result without a message.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"r"}]}]}`))
	if sch.Validate(bad) == nil {
		t.Fatal("the schema accepts a result without a message")
	}
	for name, r := range map[string]*report.Report{"run": runReport(), "policy": policyReport(), "attach": attachReport(), "clean": cleanReport()} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSARIF(&buf, r); err != nil {
				t.Fatal(err)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(doc); err != nil {
				t.Fatalf("not valid SARIF 2.1.0: %v\n%s", err, buf.String())
			}
		})
	}
}

func TestWriteSARIFResults(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, policyReport()); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID    string `json:"ruleId"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
				PartialFingerprints map[string]string
				BaselineState       string
				Suppressions        []struct{ Kind, Justification string }
			}
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	res := log.Runs[0].Results
	if len(res) != 4 {
		t.Fatalf("%d results, want one per site (4)", len(res))
	}
	byKey := map[string]int{}
	for i, r := range res {
		byKey[r.PartialFingerprints["leaktraceSite/v1"]] = i
	}
	c := res[byKey["connect"]]
	if c.RuleID != "leaked-socket" || c.Level != "error" || c.BaselineState != "new" ||
		c.Locations[0].PhysicalLocation.ArtifactLocation.URI != "file:///srv/app/db.py" || c.Locations[0].PhysicalLocation.Region.StartLine != 42 {
		t.Errorf("connect result: %+v", c)
	}
	if p := res[byKey["parquet"]]; p.Level != "note" || len(p.Suppressions) != 1 || !strings.Contains(p.Suppressions[0].Justification, "leaktrace.supp:3") {
		t.Errorf("suppressed site: %+v", p)
	}
	if s := res[byKey["spawn"]]; s.BaselineState != "unchanged" || s.Level != "note" {
		t.Errorf("baselined site: %+v", s)
	}
}

func TestWriteJUnit(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, policyReport()); err != nil {
		t.Fatal(err)
	}
	// Parsed as CI parsers do, by element and attribute names alone.
	var doc struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Skipped  int    `xml:"skipped,attr"`
			Cases    []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.String())
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d suites", len(doc.Suites))
	}
	s := doc.Suites[0]
	// 4 sites + the budget; connect, no-stack and the budget fail; 2 skipped.
	if doc.Tests != 5 || s.Tests != 5 || s.Failures != 3 || doc.Failures != 3 || s.Skipped != 2 || len(s.Cases) != 5 {
		t.Fatalf("tests %d/%d failures %d skipped %d cases %d:\n%s", doc.Tests, s.Tests, s.Failures, s.Skipped, len(s.Cases), buf.String())
	}
	for _, c := range s.Cases {
		switch {
		case strings.Contains(c.Name, "db.connect"):
			if c.Failure == nil || !strings.Contains(c.Failure.Message, "3 leaked sockets") || !strings.Contains(c.Failure.Text, "handler.serve") {
				t.Errorf("db.connect case: %+v", c)
			}
		case strings.Contains(c.Name, "io.read_parquet"), strings.Contains(c.Name, "jobs.spawn"):
			if c.Skipped == nil || c.Failure != nil {
				t.Errorf("policy-excluded case %q should be skipped", c.Name)
			}
		case c.Name == "leak budget":
			if c.Failure == nil || !strings.Contains(c.Failure.Message, "socket 3 of 0") {
				t.Errorf("budget case: %+v", c)
			}
		}
	}
	// A clean run passes every case.
	buf.Reset()
	if err := WriteJUnit(&buf, cleanReport()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `failures="0"`) {
		t.Errorf("clean report:\n%s", buf.String())
	}
}
