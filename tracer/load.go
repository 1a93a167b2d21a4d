//go:build linux

package tracer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/leaktrace/leaktrace/bpf"
)

// kernelInfo is what the running kernel offers, probed before loading.
type kernelInfo struct {
	release string
	btf     *btf.Spec
	// exitGroupDead: sched_process_exit passes group_dead (Linux 6.16+).
	exitGroupDead bool
}

// MinKernel is the oldest kernel leaktrace supports.
const MinKernel = "6.1"

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// probeKernel reads what loading needs from the kernel's BTF. Features are
// probed only when a load fails (missingFeature): probes cost start-up time.
func probeKernel() (*kernelInfo, error) {
	k := &kernelInfo{release: kernelRelease()}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("reading the kernel's BTF (Linux %s)", k.release),
			Hint: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2021)", Err: err}
	}
	k.btf = spec
	n, err := tracepointArgs(spec, "sched_process_exit")
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("this kernel (Linux %s) has no sched_process_exit tracepoint in its BTF", k.release),
			Hint: fmt.Sprintf("leaktrace needs Linux %s or newer with BTF", MinKernel), Err: err}
	}
	k.exitGroupDead = n >= 2
	return k, nil
}

// missingFeature names the first feature the programs need that this kernel
// lacks, as one line, or nil when it has them all.
func missingFeature() error {
	release := kernelRelease()
	for _, f := range []struct {
		what, since string
		probe       func() error
	}{
		{"BPF ring buffers", "5.8", func() error { return features.HaveMapType(ebpf.RingBuf) }},
		{"BPF task storage", "5.11", func() error { return features.HaveMapType(ebpf.TaskStorage) }},
		{"the bpf_task_pt_regs helper", "5.15", func() error { return features.HaveProgramHelper(ebpf.Kprobe, asm.FnTaskPtRegs) }},
		{"the bpf_loop helper", "5.17", func() error { return features.HaveProgramHelper(ebpf.Kprobe, asm.FnLoop) }},
	} {
		if err := f.probe(); errors.Is(err, ebpf.ErrNotSupported) {
			return &Error{
				Msg:  fmt.Sprintf("this kernel (Linux %s) lacks %s (Linux %s)", release, f.what, f.since),
				Hint: fmt.Sprintf("leaktrace needs Linux %s or newer with BTF", MinKernel),
				Err:  err,
			}
		}
	}
	return nil
}

// tracepointArgs is how many arguments tracepoint name passes to tp_btf
// programs (its btf_trace_ typedef's parameters, less the context).
func tracepointArgs(spec *btf.Spec, name string) (int, error) {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+name, &td); err != nil {
		return 0, err
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, fmt.Errorf("btf_trace_%s is not a function pointer", name)
	}
	fp, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return 0, fmt.Errorf("btf_trace_%s is not a function pointer", name)
	}
	return len(fp.Params) - 1, nil
}

// loadSpec is the programs' spec with cfg's knobs set.
func loadSpec(cfg Config, k *kernelInfo) (*ebpf.CollectionSpec, error) {
	spec, err := bpf.LoadLeaktrace()
	if err != nil {
		return nil, fmt.Errorf("loading BPF spec: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(cfg.RingBufferBytes)
	// The pid filter has a byte per possible pid.
	spec.Maps["traced"].MaxEntries = pidMax()
	set := map[string]uint32{
		"stack_bytes": uint32(cfg.StackBytes),
		"self_tgid":   uint32(os.Getpid()),
		// Wake the reader when a quarter of the ring (at most 256 KiB) is
		// pending; ReadUntil's short deadline collects the rest.
		"wakeup_bytes": uint32(min(cfg.RingBufferBytes/4, 256<<10)),
	}
	if k.exitGroupDead {
		set["exit_has_group_dead"] = 1
	}
	// Sites are shared among processes of leaktrace's own mount namespace
	// only: a site's module paths are the first process's, which for
	// another namespace go through its /proc/PID/root. This thread's
	// namespace, before anything may leave one in a private one.
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/mnt", &st); err == nil {
		set["self_mnt_ns"] = uint32(st.Ino)
	}
	if cfg.LiveOnly {
		set["live_only"] = 1
	}
	if cfg.NoStackSites {
		set["stack_sites"] = 0
	}
	if cfg.PairInKernel {
		set["pair_in_kernel"] = 1
		spec.Maps["parked"].MaxEntries = uint32(cfg.PairSlots)
		if err := spec.Variables["pair_window_ns"].Set(uint64(cfg.PairWindow.Nanoseconds())); err != nil {
			return nil, fmt.Errorf("setting pair_window_ns: %w", err)
		}
	}
	if cfg.TraceAll {
		set["trace_all"] = 1
		if cfg.Filter.Active() {
			set["filter_active"] = 1
		}
	}
	for name, v := range set {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	return spec, nil
}

var (
	reProg     = regexp.MustCompile(`program (\w+):`)
	reTooLarge = regexp.MustCompile(`BPF program is too large|too many states|complexity limit`)
	reHelper   = regexp.MustCompile(`unknown func|invalid func|helper call is not allowed|program of this type cannot use helper`)
	reBTF      = regexp.MustCompile(`(?i)btf|doesn't have \d+-th argument|invalid bpf_context access`)
)

// refused turns a load failure into one line a person can act on: which
// program, why (too complex, missing helper, BTF, lockdown), and where the
// verifier's log went.
func refused(err error) error {
	if missing := missingFeature(); missing != nil {
		return missing
	}
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		if errors.Is(err, unix.EPERM) {
			return &Error{Msg: "the kernel refused to load BPF programs (EPERM)",
				Hint: "run as root; under kernel lockdown or a restrictive kernel.unprivileged_bpf_disabled/LSM policy BPF may be refused", Err: err}
		}
		return fmt.Errorf("loading BPF programs: %w", err)
	}
	full := fmt.Sprintf("%+v", ve)
	prog := "a program"
	if m := reProg.FindStringSubmatch(err.Error()); m != nil {
		prog = "program " + m[1]
	}
	why := "refused by the verifier"
	hint := "please report it with the log"
	switch {
	case reTooLarge.MatchString(full):
		why = "too complex for this kernel's verifier"
		hint = "try a smaller --stack-bytes, and please report it with the log"
	case reHelper.MatchString(full):
		why = "uses a helper this kernel lacks"
		hint = fmt.Sprintf("leaktrace needs Linux %s or newer", MinKernel)
	case errors.Is(err, unix.EPERM):
		why = "refused under kernel lockdown or an LSM policy"
		hint = "check lockdown (/sys/kernel/security/lockdown) and run as root"
	case reBTF.MatchString(full):
		why = "does not match this kernel's BTF"
		hint = "please report it with the log and `uname -r`"
	}
	where := "the verifier's log could not be written to a temporary file"
	if logPath := verifierLogFile(); logPath != "" {
		if werr := os.WriteFile(logPath, []byte(full+"\n"), 0o600); werr == nil {
			where = "verifier log in " + logPath
		}
	}
	if last := verifierLastWords(ve.Log); last != "" {
		why += " (" + last + ")"
		// A chain of calls over the stack bound: the depth of each
		// function, in the order of the program's functions, says which.
		if strings.Contains(last, "stack size") {
			for _, l := range ve.Log {
				if strings.HasPrefix(l, "stack depth ") {
					why += "; " + strings.TrimSpace(l)
				}
			}
		}
	}
	return &Error{Msg: fmt.Sprintf("the kernel (Linux %s) refused %s: %s", kernelRelease(), prog, why),
		Hint: hint + "; " + where, Err: err}
}

// verifierLastWords is the verifier's own reason: the last line of its log
// that is not its closing statistics.
func verifierLastWords(log []string) string {
	for i := len(log) - 1; i >= 0; i-- {
		l := strings.TrimSpace(log[i])
		if l == "" || strings.HasPrefix(l, "processed ") || strings.HasPrefix(l, "verification time") ||
			strings.HasPrefix(l, "stack depth") || strings.HasPrefix(l, "(") {
			continue
		}
		if len(l) > 160 {
			l = l[:160] + "…"
		}
		return l
	}
	return ""
}

// verifierLogFile is a fresh file for a refused load's log.
func verifierLogFile() string {
	f, err := os.CreateTemp("", "leaktrace-verifier-*.log")
	if err != nil {
		return ""
	}
	f.Close()
	return f.Name()
}

var reProcessed = regexp.MustCompile(`processed (\d+) insns.*total_states (\d+)`)

// VerifierStats are the verifier's own figures for one program.
type VerifierStats struct {
	Program   string
	Processed int // instructions processed (the kernel's limit is 1,000,000)
	States    int
	// Stack is the program's deepest chain of calls and its stack, as
	// Linux 6.1 counts it (the bound is 512 bytes); zero when the
	// verifier's figures could not be matched to the functions.
	Stack StackChain
}

// parseVerifierStats reads the verifier's closing line from its log.
func parseVerifierStats(prog, log string) (VerifierStats, bool) {
	m := reProcessed.FindStringSubmatch(log)
	if m == nil {
		return VerifierStats{}, false
	}
	insns, _ := strconv.Atoi(m[1])
	states, _ := strconv.Atoi(m[2])
	return VerifierStats{Program: prog, Processed: insns, States: states}, true
}

// VerifierReport loads every program with cfg's settings, reads the
// verifier's figures for each, and unloads them again. Nothing is attached.
func VerifierReport(cfg Config) ([]VerifierStats, time.Duration, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, 0, err
	}
	if err := cfg.normalize(); err != nil {
		return nil, 0, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, 0, fmt.Errorf("removing memlock limit: %w", err)
	}
	k, err := probeKernel()
	if err != nil {
		return nil, 0, err
	}
	spec, err := loadSpec(cfg, k)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats, KernelTypes: k.btf},
	})
	took := time.Since(start)
	if err != nil {
		return nil, took, refused(err)
	}
	defer coll.Close()
	var out []VerifierStats
	for name, p := range coll.Programs {
		st, ok := parseVerifierStats(name, p.VerifierLog)
		if !ok {
			return nil, took, fmt.Errorf("program %s: no verifier figures in its log", name)
		}
		if depths, err := parseStackDepths(p.VerifierLog); err == nil {
			if c, err := stackChain(spec.Programs[name].Instructions, depths); err == nil {
				st.Stack = c
			} else {
				slog.Debug("no stack chain", "program", name, "err", err)
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Program < out[j].Program })
	return out, took, nil
}

// VerifierSetting is one load configuration VerifierReport is run at.
type VerifierSetting struct {
	Name   string
	Config Config
}

// VerifierSettings are the modes and extremes a user can select (every
// mode at every --stack-bytes extreme; the Python walk is always loaded):
// each must verify far below the kernel's limit.
func VerifierSettings() []VerifierSetting {
	var out []VerifierSetting
	for _, sb := range []int{NoStackCopy, 512, DefaultStackBytes, MaxStackBytes} {
		n := max(sb, 0)
		modes := []struct {
			name string
			cfg  Config
		}{
			{"run", Config{}},
			{"run-paired", Config{PairInKernel: true}},
			{"agent", Config{TraceAll: true, PairInKernel: true, LiveOnly: true}},
			{"agent-filtered", Config{TraceAll: true, PairInKernel: true, LiveOnly: true, Filter: Filter{Comms: []string{"x"}}}},
		}
		for _, m := range modes {
			c := m.cfg
			c.StackBytes = sb
			out = append(out, VerifierSetting{Name: fmt.Sprintf("%s stack=%d", m.name, n), Config: c})
		}
	}
	return out
}
