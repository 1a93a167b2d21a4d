package main

import (
	"slices"
	"testing"
)

// TestBreakdownVersusTwins: with -versus, each default configuration (not
// the --no-stack-sites ones) gets a twin run by the other binary, in the
// same turns, and is compared with it.
func TestBreakdownVersusTwins(t *testing.T) {
	b := &bench{size: smokeSizes}
	plain, _ := b.bdConfigs()
	b.cfg.versus = "/tmp/leaktrace-before"
	all, bare := b.bdConfigs()
	if len(bare) != len(all) {
		t.Fatalf("%d configurations, %d entries in bare", len(all), len(bare))
	}
	twins := 0
	for i, c := range all {
		j := versusOf(all, i)
		switch {
		case c.bin != "":
			twins++
			if c.bin != b.cfg.versus || j != -1 {
				t.Errorf("twin %q: bin %q, versusOf %d", c.label, c.bin, j)
			}
		case slices.Contains(c.flags, "--no-stack-sites"):
			if j != -1 {
				t.Errorf("%q has a twin", c.label)
			}
		default:
			if j < 0 || all[j].bin == "" || all[j].label != c.label || !slices.Equal(all[j].flags, c.flags) {
				t.Errorf("%q: no twin (versusOf %d)", c.label, j)
			}
		}
	}
	if want := len(plain) - 2; twins != want { // two --no-stack-sites configurations
		t.Errorf("%d twins, want %d", twins, want)
	}
}
