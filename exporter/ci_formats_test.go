package exporter

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// What GitHub code scanning needs beyond the schema (sarif-multitool's Ghas
// rules): help on every rule, the tool's version, and file locations it can
// place in the checkout: repository-relative, Go module paths (-trimpath)
// mapped to their directory.
func TestSARIFForGitHub(t *testing.T) {
	r := policyReport()
	r.LeaktraceVersion = "v0.3.0"
	r.Sites[0].Headline = report.Frame{Function: "github.com/acme/app/db.Connect", File: "github.com/acme/app/db/db.go", Line: 12}
	r.Sites[0].Stack = []report.Frame{r.Sites[0].Headline, {Function: "main.main", File: "/home/ci/work/app/cmd/main.go", Line: 5},
		{Function: "runtime.main", File: "/usr/local/go/src/runtime/proc.go", Line: 283}}
	var buf bytes.Buffer
	opts := SARIFOptions{Root: "/home/ci/work/app", Modules: map[string]string{"github.com/acme/app": ""}}
	if err := WriteSARIFWith(&buf, r, opts); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Version string
					Rules   []struct {
						ID      string
						HelpURI string `json:"helpUri"`
						Help    struct{ Text, Markdown string }
					}
				}
			}
			OriginalURIBaseIDs map[string]struct{ URI string } `json:"originalUriBaseIds"`
			Results            []struct {
				PartialFingerprints map[string]string
				Locations           []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI       string
							URIBaseID string `json:"uriBaseId"`
						}
					}
				}
				Stacks []struct {
					Frames []struct {
						Location struct {
							PhysicalLocation struct {
								ArtifactLocation struct {
									URI       string
									URIBaseID string `json:"uriBaseId"`
								}
							}
						}
					}
				}
			}
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if run.Tool.Driver.Version != "v0.3.0" {
		t.Errorf("tool.driver.version %q", run.Tool.Driver.Version)
	}
	if len(run.Tool.Driver.Rules) == 0 {
		t.Fatal("no rules")
	}
	for _, rule := range run.Tool.Driver.Rules {
		if rule.Help.Text == "" || rule.Help.Markdown == "" || rule.HelpURI == "" {
			t.Errorf("rule %s lacks help: %+v", rule.ID, rule)
		}
	}
	if run.OriginalURIBaseIDs["%SRCROOT%"].URI != "file:///home/ci/work/app/" {
		t.Errorf("originalUriBaseIds %v", run.OriginalURIBaseIDs)
	}
	for _, res := range run.Results {
		if res.PartialFingerprints["leaktraceSite/v1"] != "connect" {
			continue
		}
		loc := res.Locations[0].PhysicalLocation.ArtifactLocation
		if loc.URI != "db/db.go" || loc.URIBaseID != "%SRCROOT%" {
			t.Errorf("module path placed at %+v, want db/db.go under %%SRCROOT%%", loc)
		}
		var uris []string
		for _, f := range res.Stacks[0].Frames {
			uris = append(uris, f.Location.PhysicalLocation.ArtifactLocation.URI)
		}
		if want := []string{"db/db.go", "cmd/main.go", "file:///usr/local/go/src/runtime/proc.go"}; !slices.Equal(uris, want) {
			t.Errorf("stack URIs %v, want %v", uris, want)
		}
	}
	// Still valid SARIF 2.1.0.
	sch, err := jsonschema.NewCompiler().Compile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	if err := sch.Validate(doc); err != nil {
		t.Errorf("not valid SARIF 2.1.0: %v", err)
	}

	// The checkout and module are found from a directory inside it.
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, ".git"), 0o755)
	os.MkdirAll(filepath.Join(dir, "svc", "pkg"), 0o755)
	os.WriteFile(filepath.Join(dir, "svc", "go.mod"), []byte("// x\nmodule example.com/svc // y\n\ngo 1.26\n"), 0o644)
	got := SARIFOptionsAt(filepath.Join(dir, "svc", "pkg"))
	if got.Root != dir || got.Modules["example.com/svc"] != "svc" {
		t.Errorf("SARIFOptionsAt: %+v", got)
	}
}

// junitXSD is what the common JUnit schema (Jenkins' junit-10.xsd, which
// GitLab and the GitHub test-report actions follow) allows: each element's
// attributes and children.
var junitXSD = map[string]struct{ attrs, children []string }{
	"testsuites": {[]string{"name", "time", "tests", "failures", "disabled", "errors"}, []string{"testsuite"}},
	"testsuite": {[]string{"name", "tests", "failures", "errors", "group", "time", "disabled", "skipped", "timestamp", "hostname", "id", "package", "file", "log", "url", "version"},
		[]string{"properties", "testcase", "system-out", "system-err"}},
	"properties": {nil, []string{"property"}},
	"property":   {[]string{"name", "value"}, nil},
	"testcase":   {[]string{"name", "assertions", "time", "classname", "status", "file", "line"}, []string{"skipped", "error", "failure", "system-out", "system-err"}},
	"failure":    {[]string{"type", "message"}, nil},
	"error":      {[]string{"type", "message"}, nil},
	"skipped":    {[]string{"message"}, nil},
	"system-out": {nil, nil},
	"system-err": {nil, nil},
}

// Every element and attribute WriteJUnit writes is one the XSD allows, where
// it allows it (skipped on <testsuites> failed it before).
func TestJUnitFitsXSD(t *testing.T) {
	for name, r := range map[string]*report.Report{"policy": policyReport(), "clean": cleanReport(), "attach": attachReport()} {
		var buf bytes.Buffer
		if err := WriteJUnit(&buf, r); err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
		var stack []string
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch e := tok.(type) {
			case xml.StartElement:
				el := e.Name.Local
				rule, ok := junitXSD[el]
				switch {
				case !ok:
					t.Errorf("%s: element <%s> is not in the schema", name, el)
				case len(stack) == 0 && el != "testsuites":
					t.Errorf("%s: root <%s>, want <testsuites>", name, el)
				case len(stack) > 0 && !slices.Contains(junitXSD[stack[len(stack)-1]].children, el):
					t.Errorf("%s: <%s> inside <%s>", name, el, stack[len(stack)-1])
				}
				for _, a := range e.Attr {
					if !slices.Contains(rule.attrs, a.Name.Local) {
						t.Errorf("%s: attribute %s on <%s> is not in the schema", name, a.Name.Local, el)
					}
				}
				stack = append(stack, el)
			case xml.EndElement:
				stack = stack[:len(stack)-1]
			}
		}
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
