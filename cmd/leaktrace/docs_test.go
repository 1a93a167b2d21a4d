package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The GitHub Actions workflow docs/ci.md gives (and the README's excerpt of
// it) passes actionlint: scripts/ci/trust.sh builds a pinned actionlint into
// /var/cache/leaktrace-trust/bin.
func TestWorkflowExamples(t *testing.T) {
	actionlint, err := exec.LookPath("actionlint")
	if err != nil {
		actionlint = "/var/cache/leaktrace-trust/bin/actionlint"
		if _, err := os.Stat(actionlint); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("actionlint is missing in CI: scripts/ci/trust.sh builds it")
			}
			t.Skip("skipping: no actionlint (bash scripts/ci/trust.sh builds it)")
		}
	}
	doc, err := os.ReadFile("../../docs/ci.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	n := 0
	for _, b := range blocks {
		if !strings.Contains(b[1], "jobs:") {
			continue
		}
		n++
		wf := b[1]
		if !strings.Contains(wf, "\non:") && !strings.HasPrefix(wf, "on:") {
			wf = "name: leaks\non: [push, pull_request]\n" + wf
		}
		path := filepath.Join(t.TempDir(), "leaks.yml")
		if err := os.WriteFile(path, []byte(wf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(actionlint, "-no-color", "-shellcheck=", path).CombinedOutput()
		if err != nil {
			t.Errorf("actionlint finds problems in docs/ci.md's workflow: %v\n%s", err, out)
		}
	}
	if n == 0 {
		t.Fatal("docs/ci.md has no workflow (a yaml block with jobs:)")
	}
}
