package tracer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/asm"
)

// maxBPFStack is the kernel's bound on the stack of a whole chain of BPF
// calls (MAX_BPF_STACK).
const maxBPFStack = 512

// StackChain is the deepest chain of calls of one program and its stack,
// counted as Linux 6.1 counts it: each function's frame rounded up to 32
// bytes (a function with none still takes 32), and only direct calls:
// callbacks (bpf_loop, bpf_for_each_map_elem, bpf_find_vma) are not in the
// chain (6.1 loads a program whose chain through its callbacks is 576
// bytes, and refuses 544 bytes of direct calls). Newer kernels round only
// for the interpreter, so there the figure is an upper bound.
type StackChain struct {
	Bytes int
	Path  []string // entry first
}

// parseStackDepths reads the verifier's "stack depth A+B+…" statistics line:
// one figure per function of the program, in the order of their code.
func parseStackDepths(log string) ([]int, error) {
	const prefix = "stack depth "
	for _, l := range strings.Split(log, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		var out []int
		for _, f := range strings.Split(strings.TrimPrefix(l, prefix), "+") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 || n > 1<<20 {
				return nil, fmt.Errorf("stack depth line %q: bad figure %q", l, f)
			}
			out = append(out, n)
		}
		return out, nil
	}
	return nil, errors.New("no stack depth line in the verifier's log")
}

// stackChain finds the deepest chain of calls of insns, a program with its
// functions as loaded (each starts at an instruction carrying its symbol),
// given the verifier's stack depth of each function in that order.
func stackChain(insns asm.Instructions, depths []int) (StackChain, error) {
	type fn struct {
		name  string
		depth int
		calls []string
	}
	var fns []*fn
	byName := map[string]*fn{}
	for _, ins := range insns {
		if sym := ins.Symbol(); sym != "" {
			f := &fn{name: sym}
			fns = append(fns, f)
			byName[sym] = f
		}
		if len(fns) == 0 {
			return StackChain{}, errors.New("the program's first instruction names no function")
		}
		if ins.IsFunctionCall() && ins.Reference() != "" {
			cur := fns[len(fns)-1]
			cur.calls = append(cur.calls, ins.Reference())
		}
	}
	if len(fns) != len(depths) {
		// The verifier dropped a function it proved dead, or the log is
		// another program's: the figures cannot be matched to functions.
		return StackChain{}, fmt.Errorf("%d functions, %d stack depths", len(fns), len(depths))
	}
	for i, f := range fns {
		f.depth = (max(depths[i], 1) + 31) / 32 * 32
	}
	memo := map[string]StackChain{}
	var deepest func(f *fn, seen map[string]bool) (StackChain, error)
	deepest = func(f *fn, seen map[string]bool) (StackChain, error) {
		if c, ok := memo[f.name]; ok {
			return c, nil
		}
		if seen[f.name] {
			return StackChain{}, fmt.Errorf("function %s calls itself", f.name)
		}
		seen[f.name] = true
		defer delete(seen, f.name)
		best := StackChain{}
		for _, callee := range f.calls {
			g := byName[callee]
			if g == nil {
				return StackChain{}, fmt.Errorf("function %s calls %s, which is not in the program", f.name, callee)
			}
			c, err := deepest(g, seen)
			if err != nil {
				return StackChain{}, err
			}
			if c.Bytes > best.Bytes {
				best = c
			}
		}
		c := StackChain{Bytes: f.depth + best.Bytes, Path: append([]string{f.name}, best.Path...)}
		memo[f.name] = c
		return c, nil
	}
	return deepest(fns[0], map[string]bool{})
}
