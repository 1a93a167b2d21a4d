// Package report is the data model of a leak report: what the aggregator and the
// symbolizer produce and what every exporter renders. It is also the JSON contract
// (docs/json-schema.md): field names and meanings are stable within a Schema version.
package report

import "runtime/debug"

// Schema is the version of the JSON document. Bump the minor for additions, the
// major for anything that changes or removes a field.
const Schema = "leaktrace.report/v1.5"

// Report is one run's or one attach session's result.
type Report struct {
	Schema string `json:"schema"`
	// LeaktraceVersion names the build that wrote the report (BuildVersion).
	LeaktraceVersion string   `json:"leaktrace_version,omitempty"`
	Mode             string   `json:"mode"`              // "run", "attach" or "agent"
	Command          []string `json:"command,omitempty"` // run: the traced command line
	// ExitCode is the traced command's own exit status (run), 128+N when it was
	// killed by signal N; -1 when there is none (attach).
	ExitCode int     `json:"exit_code"`
	PID      int     `json:"pid,omitempty"` // attach: the target
	Started  string  `json:"started"`       // RFC 3339
	Duration float64 `json:"duration_seconds"`
	// Complete is false when events were lost or a table had to be reconciled from
	// /proc: the leak list may then miss or misattribute handles.
	Complete bool     `json:"complete"`
	Events   Events   `json:"events"`
	Notes    []string `json:"notes,omitempty"` // why the report is incomplete, and other caveats

	Leaks []Leak `json:"leaks"`
	Sites []Site `json:"sites"`
	// Preexisting lists handles that were open before tracing began (attach): they
	// have no stack and are never counted as leaks.
	Preexisting []Leak `json:"preexisting,omitempty"`
	// HeldAtExit sums, in attach and agent reports, what traced processes held
	// when they exited: the kernel released it then, so none of it is a leak.
	HeldAtExit *HeldAtExit `json:"held_at_exit,omitempty"`
	// YoungerThanMinAge counts, in attach and agent reports, what live
	// processes hold that would count but is younger than --min-age: not
	// judged yet, so a short attach never looks clean by accident.
	YoungerThanMinAge *Young `json:"younger_than_min_age,omitempty"`
	// Processes lists every traced process, with counts.
	Processes []Process `json:"processes"`
	// Executables groups the processes by executable: a test runner forks many
	// short processes of a few programs.
	Executables []Executable `json:"executables,omitempty"`
	Budget      *Budget      `json:"budget,omitempty"`
	// Mapped is memory mapped (mmap, brk) by traced processes and not
	// unmapped, by the site that mapped it: at their exit (run), or now
	// (attach, agent). Not leaks: never in Leaks, Sites or the leak budget.
	Mapped *Mapped `json:"mapped,omitempty"`
	// Policy records what decided which leaks count, so a saved report can be
	// re-rendered and re-judged the same way.
	Policy *Policy `json:"policy,omitempty"`
}

// Events counts what the kernel side produced and what was lost on the way.
type Events struct {
	Received uint64 `json:"received"`
	Lost     uint64 `json:"lost"`
	// PairedInKernel counts handles closed within the pairing window of
	// their creation and settled in the kernel: never sent.
	PairedInKernel uint64 `json:"paired_in_kernel,omitempty"`
	// Stacks says how creation stacks crossed from the kernel.
	Stacks *StackCounts `json:"stacks,omitempty"`
}

// StackCounts counts creation stacks by the form they were sent in.
type StackCounts struct {
	// Site: unwound in the kernel, sent as the hash of a site Go knew.
	Site uint64 `json:"site"`
	// New: unwound in the kernel, sent with their pcs (a site's first).
	New uint64 `json:"new"`
	// Copy: registers and a copy of the stack, unwound in Go (a frame the
	// kernel had no rule for yet).
	Copy uint64 `json:"copy"`
	// Unknown: sent as a site Go no longer had; their handles have no stack.
	Unknown uint64 `json:"unknown,omitempty"`
	// FileRules: unwind rules a process got from its file's, taught from
	// another process that maps the same file (each saves a copy).
	FileRules uint64 `json:"file_rules,omitempty"`
	// Memo: of Site, found in the kernel from a memo of the same walk
	// (same frame, the stack words it read unchanged) without walking.
	Memo uint64 `json:"memo,omitempty"`
	// Python: stacks whose Python frames the kernel walked.
	Python uint64 `json:"python,omitempty"`
	// PythonThreadKnown: of Python, those whose thread state was the
	// thread's last one, checked instead of searched for.
	PythonThreadKnown uint64 `json:"python_thread_known,omitempty"`
}

// Leak is one handle that was never released (run) or is outstanding past the
// minimum age (attach).
type Leak struct {
	PID        int     `json:"pid"`
	Comm       string  `json:"comm"`
	Exe        string  `json:"exe,omitempty"`
	FD         int     `json:"fd"`            // -1 for thread and process handles
	TID        int     `json:"tid,omitempty"` // thread and process handles: its id
	Kind       string  `json:"kind"`
	Target     string  `json:"target"`
	AgeSeconds float64 `json:"age_seconds"`
	Inherited  bool    `json:"inherited"`
	// Internal marks a handle a language runtime made for itself (Go's own
	// threads and netpoller fds): listed, never counted or grouped in Sites.
	Internal bool `json:"internal,omitempty"`
	// ClosedBy is set when something other than the program closed the handle
	// after the program was done with it: "python-shutdown", the Python
	// interpreter's finalization (the program still referenced it at exit).
	ClosedBy string `json:"closed_by,omitempty"`
	// Site is the key of the Site this leak belongs to ("" when it has no stack).
	Site  string  `json:"site"`
	Stack []Frame `json:"stack"`
	// HandedOver: a copy inherited at fork whose original no traced process
	// holds any more (the parent closed it or exited), so the child's own
	// handle (attach, agent); Inherited is false then.
	HandedOver bool `json:"handed_over,omitempty"`
	// Counted is true when the leak is in its site's Count and the budget.
	Counted bool `json:"counted"`
	// NotCounted says why a leak does not count: one of the NotCounted* values.
	NotCounted string `json:"not_counted,omitempty"`
	// SuppressedBy names the suppression rule that matched ("FILE:LINE: RULE").
	SuppressedBy string `json:"suppressed_by,omitempty"`
}

// Why a leak is not counted (Leak.NotCounted).
const (
	NotCountedInternal   = "internal"   // a language runtime's own handle
	NotCountedInherited  = "inherited"  // a copy inherited at fork, not asked for
	NotCountedMinAge     = "min_age"    // younger than --min-age when it became a leak
	NotCountedSuppressed = "suppressed" // matched a suppression rule
	NotCountedBaseline   = "baseline"   // its site leaked no more than in the baseline
)

// Frame is one symbolized stack frame, innermost first in a Stack.
type Frame struct {
	Address  uint64 `json:"address"`
	Function string `json:"function,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Module   string `json:"module,omitempty"`
	// Appended marks a Python frame placed after the native frames: the
	// native unwind stopped before the interpreter's eval loop (a thread's
	// creation, a stack deeper than was copied), so where it ran between
	// the native frames is not known.
	Appended bool `json:"appended,omitempty"`
}

// Site groups leaks created by the same call stack.
type Site struct {
	Key   string `json:"key"` // stable across rebuilds: derived from functions and files, not addresses
	Count int    `json:"count"`
	// Headline is the frame that best names the user's code that made the leak.
	Headline Frame          `json:"headline"`
	Kinds    map[string]int `json:"kinds"`
	Targets  []string       `json:"targets"` // a few examples
	Exes     []string       `json:"exes"`
	Stack    []Frame        `json:"stack"`
	// Growth is, in attach mode, how many more handles of this site are outstanding
	// now than at the start of the session.
	Growth int `json:"growth,omitempty"`
	// Outstanding is, in attach mode, how many handles of this site are open now
	// (older or younger than min-age).
	Outstanding int `json:"outstanding,omitempty"`
	// Uncounted is how many leaks of this site a policy left out of Count:
	// suppressed, in the baseline, or younger than --min-age.
	Uncounted int `json:"uncounted,omitempty"`
	// BaselineState compares the site with --baseline: "new", "grew" or
	// "unchanged" (no more leaks than the baseline had).
	BaselineState string `json:"baseline_state,omitempty"`
	// BaselineCount is the site's count in the baseline.
	BaselineCount int `json:"baseline_count,omitempty"`
}

// Process summarizes one traced process.
type Process struct {
	PID    int    `json:"pid"`
	PPID   int    `json:"ppid"`
	Comm   string `json:"comm"`
	Exe    string `json:"exe,omitempty"`
	Leaked int    `json:"leaked"`
	// HeldAtExit is, in attach and agent reports, how many handles the process
	// held when it exited (not leaks).
	HeldAtExit int  `json:"held_at_exit,omitempty"`
	Exited     bool `json:"exited"`
	ExitCode   int  `json:"exit_code"`
	// Reconciled is true when the process's table was rebuilt from /proc after
	// lost events.
	Reconciled bool `json:"reconciled,omitempty"`
}

// HeldAtExit sums what processes held when they exited (attach, agent).
type HeldAtExit struct {
	Processes int `json:"processes"` // exited processes that held at least one handle
	Handles   int `json:"handles"`
	Inherited int `json:"inherited"` // of Handles, copies inherited at fork
	// Kinds breaks Handles down by kind.
	Kinds map[string]int `json:"kinds"`
	// Sites are the stacks that made most of them, largest first (at most
	// MaxHeldSites); Count is handles held at exit.
	Sites []Site `json:"sites"`
}

// MaxHeldSites bounds HeldAtExit.Sites.
const MaxHeldSites = 10

// Young counts what was not judged yet for being younger than --min-age.
type Young struct {
	Handles       int            `json:"handles"`
	Kinds         map[string]int `json:"kinds"`
	MinAgeSeconds float64        `json:"min_age_seconds"`
}

// Executable summarizes the processes that ran one executable.
type Executable struct {
	Exe       string         `json:"exe"` // path, or comm when unknown
	Processes int            `json:"processes"`
	Leaked    int            `json:"leaked"`
	Kinds     map[string]int `json:"kinds"`
	Sites     int            `json:"sites"` // distinct sites of its counted leaks
}

// Budget is the verdict of `run --budget`.
type Budget struct {
	Limit    int  `json:"limit"` // -1 when only per-kind or per-site limits were set
	Leaked   int  `json:"leaked"`
	Exceeded bool `json:"exceeded"` // any limit, total, kind or site, was exceeded
	// Incomplete: events were lost, so the counts may be wrong either way and
	// the verdict fails (exit 98) whatever they say; --allow-incomplete
	// judges such a report on its counts instead.
	Incomplete bool          `json:"incomplete,omitempty"`
	Kinds      []BudgetLimit `json:"kinds,omitempty"`
	Sites      []BudgetLimit `json:"sites,omitempty"`
	// Mapped is the verdict of --budget mapped=SIZE on Mapped.Bytes.
	Mapped *BudgetBytes `json:"mapped,omitempty"`
}

// Mapped is outstanding mapped memory by creating site.
type Mapped struct {
	// Bytes is what every site had mapped, page-rounded (not only the
	// sites listed).
	Bytes uint64 `json:"bytes"`
	// Mappings counts the ranges those bytes are in.
	Mappings int `json:"mappings"`
	// InheritedBytes is what live processes hold as copies made at fork
	// (the parent's creations, in no site's Bytes).
	InheritedBytes uint64 `json:"inherited_bytes,omitempty"`
	// HeldAtExitBytes is, in attach and agent reports, what processes had
	// mapped when they exited (the kernel released it then).
	HeldAtExitBytes uint64 `json:"held_at_exit_bytes,omitempty"`
	// Sites are the sites with the most bytes, largest first (at most
	// MaxMappedSites).
	Sites []MappedSite `json:"sites"`
}

// MaxMappedSites bounds Mapped.Sites.
const MaxMappedSites = 10

// MappedSite is what one call stack mapped and did not unmap.
type MappedSite struct {
	Key      string `json:"key"` // as Site.Key: the same stack has the same key
	Bytes    uint64 `json:"bytes"`
	Mappings int    `json:"mappings"`
	// GrowthBytes is, in attach and agent reports, how many more bytes the
	// site has mapped now than at its lowest since the session began.
	GrowthBytes uint64   `json:"growth_bytes,omitempty"`
	Headline    Frame    `json:"headline"`
	Targets     []string `json:"targets"` // "[anon]", "[heap]", a file's name
	Stack       []Frame  `json:"stack"`
}

// BudgetBytes is the verdict of a limit in bytes (--budget mapped=SIZE).
type BudgetBytes struct {
	Limit    uint64 `json:"limit"`
	Bytes    uint64 `json:"bytes"`
	Exceeded bool   `json:"exceeded"`
}

// BudgetLimit is the verdict of one per-kind or per-site limit.
type BudgetLimit struct {
	Name     string `json:"name"`            // the kind, or the site's key
	Where    string `json:"where,omitempty"` // sites: the headline, "function (file:line)"
	Limit    int    `json:"limit"`
	Leaked   int    `json:"leaked"`
	Exceeded bool   `json:"exceeded"`
}

// Policy is what decided which leaks count.
type Policy struct {
	CountInherited bool     `json:"count_inherited"`
	MinAge         float64  `json:"min_age_seconds,omitempty"`
	Baseline       string   `json:"baseline,omitempty"`     // the baseline file
	Suppressions   []string `json:"suppressions,omitempty"` // the suppression files
}

// Executable names the program that made l: its path, else its comm.
func (l *Leak) Executable() string {
	if l.Exe != "" {
		return l.Exe
	}
	return l.Comm
}

// AddExample appends v to list unless it is empty, already there, or list
// holds max examples.
func AddExample(list *[]string, v string, max int) {
	if v == "" || len(*list) >= max {
		return
	}
	for _, x := range *list {
		if x == v {
			return
		}
	}
	*list = append(*list, v)
}

// BuildVersion names this leaktrace build: its module version, or for a
// development build the VCS revision it was built from.
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(len(rev), 12)] + dirty
}

// RootPID is the traced command's pid: the one process whose parent was not
// traced; 0 when there is none.
func (r *Report) RootPID() int {
	pids := make(map[int]bool, len(r.Processes))
	for _, p := range r.Processes {
		pids[p.PID] = true
	}
	for _, p := range r.Processes {
		if !pids[p.PPID] {
			return p.PID
		}
	}
	return 0
}

// HasFunction reports whether a frame of stack is function fn.
func HasFunction(stack []Frame, fn string) bool {
	for _, f := range stack {
		if f.Function == fn {
			return true
		}
	}
	return false
}
