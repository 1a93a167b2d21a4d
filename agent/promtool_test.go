package agent

import (
	"os"
	"os/exec"
	"testing"
)

// promtool checks the rules file and runs the memory rules' unit tests;
// CI installs it (scripts/ci/operator.sh), a developer without it is told.
func TestPromtoolMemoryRules(t *testing.T) {
	tool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is needed (scripts/ci/operator.sh installs Debian's prometheus)")
		}
		t.Skip("skipping: no promtool (apt-get install -y prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "leaktrace.rules.yml"},
		{"test", "rules", "leaktrace-memory.rules.test.yml"},
	} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = "../deploy/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
