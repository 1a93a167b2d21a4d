package integration

import (
	"bytes"
	"encoding/xml"
	"fmt"
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

// leaktrace runs the built leaktrace with args and returns its exit code and
// combined output.
func leaktrace(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "leaktrace"), args...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("running leaktrace %s: %v", strings.Join(args, " "), err)
	}
	return ee.ExitCode(), string(out)
}

// leakyPrograms are the repo's own leaky examples, as CI would run them.
func leakyPrograms(t *testing.T) map[string][]string {
	dir := binaries(t)
	return map[string][]string{
		"leaky-c":  {filepath.Join(dir, "leaky-c")},
		"leaky-go": {filepath.Join(dir, "leaky-go")},
		"demo":     {filepath.Join(dir, "leaktrace"), "__workload", "demo"},
	}
}

// TestBudgetSuite runs each leaky example under `leaktrace run` once to see
// what it leaks, then again under budgets just at and just below each count:
// leaktrace must exit 99 exactly when a total, kind or site limit is overrun,
// 0 when within it or when the leaks are baselined, suppressed or under
// --min-age, and with the command's own code when the command fails.
func TestBudgetSuite(t *testing.T) {
	requireRoot(t)
	for name, argv := range leakyPrograms(t) {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			obs := filepath.Join(tmp, "observed.json")
			base := filepath.Join(tmp, "baseline.json")
			code, out := leaktrace(t, append([]string{"run", "--json", obs, "--write-baseline", base, "--"}, argv...)...)
			if code != 0 {
				t.Fatalf("unbudgeted run: exit %d\n%s", code, out)
			}
			r := readReport(t, obs)
			total, kinds, top := 0, map[string]int{}, report.Site{}
			for _, s := range r.Sites {
				total += s.Count
				for k, n := range s.Kinds {
					kinds[k] += n
				}
				if s.Count > top.Count && s.Headline.Function != "" {
					top = s
				}
			}
			if total < 3 || top.Count == 0 {
				t.Fatalf("%s leaked %d handles, top site %+v: too few to test budgets", name, total, top.Headline)
			}
			kind := sortedKeys(kinds)[0]
			var allFuncs, allButTop []string
			for _, s := range r.Sites {
				if s.Count == 0 {
					continue
				}
				rule := "fun:" + s.Headline.Function
				if s.Headline.Function == "" {
					rule = "site:" + s.Key // a stackless or unsymbolized site
				}
				allFuncs = append(allFuncs, rule)
				if s.Key != top.Key {
					allButTop = append(allButTop, rule)
				}
			}
			suppAll := writeFile(t, tmp, "all.supp", "# everything this example leaks\n"+strings.Join(allFuncs, "\n")+"\n")
			suppSome := writeFile(t, tmp, "some.supp", strings.Join(allButTop, "\n")+"\n")
			shArgv := append([]string{"sh", "-c", `"$@"; exit 3`, "sh"}, argv...)
			n := func(v int) string { return fmt.Sprint(v) }
			cases := []struct {
				name  string
				flags []string
				argv  []string
				want  int
			}{
				{"total at the count", []string{"--budget", n(total)}, argv, 0},
				{"total one below", []string{"--budget", n(total - 1)}, argv, 99},
				{"kind at the count", []string{"--budget", kind + "=" + n(kinds[kind])}, argv, 0},
				{"kind one below", []string{"--budget", kind + "=" + n(kinds[kind]-1)}, argv, 99},
				{"every site at the top count", []string{"--budget", "site=" + n(top.Count)}, argv, 0},
				{"every site below the top count", []string{"--budget", "site=" + n(top.Count-1)}, argv, 99},
				{"named site one below", []string{"--budget", "site:" + top.Headline.Function + "=" + n(top.Count-1)}, argv, 99},
				{"baselined", []string{"--budget", "0", "--baseline", base}, argv, 0},
				{"baselined by the JSON report", []string{"--budget", "0", "--baseline", obs}, argv, 0},
				{"all suppressed", []string{"--budget", "0", "--suppressions", suppAll}, argv, 0},
				{"all but the top site suppressed", []string{"--budget", n(top.Count - 1), "--suppressions", suppSome}, argv, 99},
				{"younger than min-age", []string{"--budget", "0", "--min-age", "1h"}, argv, 0},
				{"the command's own failure wins", []string{"--budget", "0"}, shArgv, 3},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					args := append(append([]string{"run"}, tc.flags...), "--")
					code, out := leaktrace(t, append(args, tc.argv...)...)
					if code != tc.want {
						t.Errorf("leaktrace %s: exit %d, want %d\n%s", strings.Join(tc.flags, " "), code, tc.want, out)
					}
					last := lastLine(out)
					if slices.Contains(tc.flags, "--budget") && !strings.Contains(last, "budget") {
						t.Errorf("summary line has no budget verdict: %q", last)
					}
				})
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

func sortedKeys(m map[string]int) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestReportFormatsReadable writes every report format from a real run of the
// leaky C program and reads each with its real consumer: ReadJSON, the pprof
// parser and `go tool pprof -top`, the official SARIF 2.1.0 schema, and an
// XML parse of the JUnit structure.
func TestReportFormatsReadable(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	code, out := leaktrace(t, "run", "--budget", "socket=0", "--json", p("r.json"), "--pprof", p("r.pb.gz"),
		"--sarif", p("r.sarif"), "--junit", p("r.xml"), "--", filepath.Join(binaries(t), "leaky-c"))
	if code != 99 {
		t.Fatalf("exit %d, want 99 (one socket over socket=0)\n%s", code, out)
	}
	if !strings.Contains(lastLine(out), "budget socket=0: exceeded (1 leaked)") {
		t.Errorf("summary line: %q", lastLine(out))
	}

	r := readReport(t, p("r.json"))
	if r.Budget == nil || !r.Budget.Exceeded || len(r.Budget.Kinds) != 1 || r.Budget.Kinds[0].Leaked != 1 {
		t.Errorf("json budget verdict %+v", r.Budget)
	}
	counted := 0
	for _, l := range r.Leaks {
		if l.Counted {
			counted++
		}
	}
	if counted != 7 {
		t.Errorf("%d leaks marked counted, want 7", counted)
	}

	data, err := os.ReadFile(p("r.pb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("pprof parse: %v", err)
	}
	var sum int64
	for _, s := range prof.Sample {
		sum += s.Value[0]
	}
	if sum != 7 {
		t.Errorf("profile holds %d leaks, want 7", sum)
	}
	top, err := exec.Command(filepath.Join(runtimeGOROOT(), "bin", "go"), "tool", "pprof", "-top", p("r.pb.gz")).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, top)
	}
	for _, fn := range []string{"leak_pipe", "leak_socket", "main"} {
		if !strings.Contains(string(top), fn) {
			t.Errorf("go tool pprof -top lacks %s:\n%s", fn, top)
		}
	}

	sch, err := jsonschema.NewCompiler().Compile(filepath.Join(repoRoot(), "exporter", "testdata", "sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	sf, err := os.Open(p("r.sarif"))
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	doc, err := jsonschema.UnmarshalJSON(sf)
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Errorf("SARIF not valid against the 2.1.0 schema: %v", err)
	}
	sarif, _ := os.ReadFile(p("r.sarif"))
	if !strings.Contains(string(sarif), `"uri": "testdata/leaky-c/leaky.c"`) || !strings.Contains(string(sarif), `"startLine": 29`) {
		t.Errorf("SARIF does not place leak_socket at leaky.c:29:\n%s", sarif)
	}

	xmlData, err := os.ReadFile(p("r.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(xmlData, &suites); err != nil {
		t.Fatalf("junit: %v", err)
	}
	// Six sites and the budget, all failing.
	if len(suites.Suites) != 1 || suites.Suites[0].Tests != 7 || suites.Suites[0].Failures != 7 {
		t.Errorf("junit suites %+v", suites.Suites)
	}
}
