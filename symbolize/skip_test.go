package symbolize

import (
	"os"
	"testing"
)

// skipUnlessCI skips a developer's run that lacks a tool, saying why; in CI
// (CI=true) the tool is installed by .ci/run, so its absence fails the test.
func skipUnlessCI(t testing.TB, why any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("in CI this must not be skipped: %v", why)
	}
	t.Skip(why)
}
