package tracer

import (
	"os"
	"testing"
)

// headroomBudget is 10 % of the verifier's 1,000,000-instruction limit: the
// same object needed 2-8x more verifier work on one build of a kernel than
// on another, so a program must load far below the limit, not just below.
const headroomBudget = 100_000

// requireRoot skips a non-root developer run (saying why) and fails in CI,
// where these tests must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI must run this test as root: it loads the real BPF programs")
	}
	t.Skip("needs root to load BPF programs (run: sudo go test ./tracer)")
}

func TestVerifierHeadroom(t *testing.T) {
	requireRoot(t)
	var worst, deepest VerifierStats
	for _, s := range VerifierSettings() {
		stats, took, err := VerifierReport(s.Config)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if len(stats) < 5 {
			t.Fatalf("%s: %d programs reported, want 5", s.Name, len(stats))
		}
		for _, st := range stats {
			t.Logf("%-28s %-20s %7d insns %5d states %4d ms  stack %d", s.Name, st.Program, st.Processed, st.States, took.Milliseconds(), st.Stack.Bytes)
			if st.Processed > headroomBudget {
				t.Errorf("%s: program %s needs %d processed instructions, over the %d budget", s.Name, st.Program, st.Processed, headroomBudget)
			}
			// This kernel's figures, counted by Linux 6.1's rule (known when
			// the verifier kept every function): over the bound, 6.1 refuses
			// it (make vmtest measures 6.1's own figures).
			if st.Stack.Bytes > maxBPFStack {
				t.Errorf("%s: program %s's deepest call chain takes %d stack bytes as Linux 6.1 counts them, over %d: %v", s.Name, st.Program, st.Stack.Bytes, maxBPFStack, st.Stack.Path)
			}
			if st.Processed > worst.Processed {
				worst = st
			}
			if st.Stack.Bytes > deepest.Stack.Bytes {
				deepest = st
			}
		}
	}
	t.Logf("largest: %s at %d processed instructions (%.1f %% of the kernel's limit)", worst.Program, worst.Processed, float64(worst.Processed)/1e4)
	t.Logf("deepest call chain: %s, %d of %d stack bytes as Linux 6.1 counts them: %v", deepest.Program, deepest.Stack.Bytes, maxBPFStack, deepest.Stack.Path)
}

func TestParseVerifierStats(t *testing.T) {
	log := "func#0 @0\n...\nprocessed 28758 insns (limit 1000000) max_states_per_insn 4 total_states 1175 peak_states 600 mark_read 12\n"
	st, ok := parseVerifierStats("sys_exit", log)
	if !ok || st.Processed != 28758 || st.States != 1175 || st.Program != "sys_exit" {
		t.Fatalf("parseVerifierStats = %+v, %v", st, ok)
	}
	if _, ok := parseVerifierStats("x", "no figures here"); ok {
		t.Fatal("parsed figures from a log without them")
	}
}

func TestVerifierLastWords(t *testing.T) {
	log := []string{"0: (bf) r6 = r1", "R1 invalid mem access 'scalar'", "processed 12 insns (limit 1000000) max_states_per_insn 0 total_states 1", "verification time 20 usec", ""}
	if got := verifierLastWords(log); got != "R1 invalid mem access 'scalar'" {
		t.Fatalf("verifierLastWords = %q", got)
	}
	if got := verifierLastWords(nil); got != "" {
		t.Fatalf("verifierLastWords(nil) = %q", got)
	}
}
