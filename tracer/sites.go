//go:build linux

package tracer

import (
	"fmt"

	"github.com/leaktrace/leaktrace/bpf"
	"github.com/leaktrace/leaktrace/symbolize"
)

// LearnRules gives the kernel unwind rules of proc's address space, found
// by Go's unwinder (symbolize.UnwindFrom) on a stack the kernel could not unwind itself. Once every
// frame of a call site has one, the kernel unwinds that site's stacks alone
// and sends them as a site (Stack.Site). A full table evicts its least used
// rules: the kernel then sends a copy again, never a wrong stack.
func (t *Tracer) LearnRules(proc ProcKey, rules []symbolize.Rule) error {
	if len(rules) == 0 || t.maps.UnwindRules == nil {
		return nil
	}
	keys := make([]bpf.LeaktraceLtProcPc, len(rules))
	vals := make([]bpf.LeaktraceLtRule, len(rules))
	pk := bpf.LeaktraceLtProcKey{Start: proc.Start, Exec: proc.Exec, Tgid: proc.TGID}
	for i, r := range rules {
		keys[i] = bpf.LeaktraceLtProcPc{Proc: pk, Pc: r.PC}
		vals[i] = bpf.LeaktraceLtRule{CfaOff: r.CFAOff, RaOff: r.RAOff, BpOff: r.BPOff, Kind: uint8(r.Kind),
			CfaBp: b2u8(r.CFAFromBP), BpSaved: b2u8(r.BPSaved)}
	}
	if _, err := t.maps.UnwindRules.BatchUpdate(keys, vals, nil); err != nil {
		return fmt.Errorf("writing %d unwind rules of pid %d: %w", len(rules), proc.TGID, err)
	}
	return nil
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
