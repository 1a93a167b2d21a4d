package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	pathpkg "path"
	"path/filepath"
	"strings"

	"github.com/leaktrace/leaktrace/report"
)

// SARIF 2.1.0 (OASIS), the subset leaktrace writes. Field names are the
// standard's; docs/ci.md says how GitHub code scanning shows them.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool               sarifTool                `json:"tool"`
	OriginalURIBaseIDs map[string]sarifArtifact `json:"originalUriBaseIds,omitempty"`
	Invocations        []sarifInvocation        `json:"invocations"`
	Results            []sarifResult            `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	Name             string       `json:"name"`
	ShortDescription sarifMessage `json:"shortDescription"`
	FullDescription  sarifMessage `json:"fullDescription"`
	Help             sarifHelp    `json:"help"`
	HelpURI          string       `json:"helpUri"`
	DefaultConfig    sarifConfig  `json:"defaultConfiguration"`
}

// sarifHelp is a rule's help, shown by code scanning beside each alert.
type sarifHelp struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool     `json:"executionSuccessful"`
	CommandLine         string   `json:"commandLine,omitempty"`
	ExitCode            *int     `json:"exitCode,omitempty"`
	Notifications       []sarifN `json:"toolExecutionNotifications,omitempty"`
}

type sarifN struct {
	Message sarifMessage `json:"message"`
	Level   string       `json:"level"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifMessage       `json:"message"`
	Locations           []sarifLocation    `json:"locations,omitempty"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	BaselineState       string             `json:"baselineState,omitempty"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Stacks              []sarifStack       `json:"stacks,omitempty"`
	Properties          map[string]any     `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
	Message          *sarifMessage  `json:"message,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification,omitempty"`
}

type sarifStack struct {
	Message sarifMessage `json:"message"`
	Frames  []sarifFrame `json:"frames"`
}

type sarifFrame struct {
	Location sarifLocation `json:"location"`
	Module   string        `json:"module,omitempty"`
}

const (
	sarifSchema      = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifFingerprint = "leaktraceSite/v1"
	sarifSrcRoot     = "%SRCROOT%"
	sarifHelpURI     = "https://github.com/leaktrace/leaktrace/blob/main/docs/ci.md#which-leaks-count"
)

// SARIFOptions place a report's source files in the repository that code
// scanning shows them in.
type SARIFOptions struct {
	// Root is the repository's checkout: absolute paths under it are made
	// relative to it.
	Root string
	// Modules maps a Go module path to its directory under Root ("" for
	// Root itself): Go built with -trimpath names its files
	// module/path/file.go.
	Modules map[string]string
}

// SARIFOptionsAt finds the checkout dir is in: the nearest parent holding
// .git (else go.mod), and the module of the nearest go.mod.
func SARIFOptionsAt(dir string) SARIFOptions {
	var opts SARIFOptions
	dir, err := filepath.Abs(dir)
	if err != nil {
		return opts
	}
	modDir, module := "", ""
	for d := dir; ; d = filepath.Dir(d) {
		if module == "" {
			if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
				if m := modfileModule(string(b)); m != "" {
					modDir, module = d, m
				}
			}
		}
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			opts.Root = d
			break
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if opts.Root == "" {
		opts.Root = modDir
	}
	if module != "" && opts.Root != "" {
		if rel, err := filepath.Rel(opts.Root, modDir); err == nil && !strings.HasPrefix(rel, "..") {
			opts.Modules = map[string]string{module: strings.TrimPrefix(filepath.ToSlash(rel), ".")}
		}
	}
	return opts
}

// modfileModule is the module path a go.mod declares.
func modfileModule(gomod string) string {
	for line := range strings.SplitSeq(gomod, "\n") {
		line, _, _ = strings.Cut(line, "//")
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// WriteSARIF writes the report's sites as a SARIF 2.1.0 log: one result per
// site, at the file and line of its headline frame (the user's code that made
// the handles), with its stack. Sites whose leaks count are errors; sites a
// suppression or the baseline left out are listed as suppressed or
// unchanged, so code scanning closes their alerts instead of losing them.
func WriteSARIF(w io.Writer, r *report.Report) error {
	return WriteSARIFWith(w, r, SARIFOptions{})
}

// WriteSARIFWith is WriteSARIF with source files placed by opts: paths in the
// checkout and Go module paths become repository-relative, so code scanning
// can show them on the code.
func WriteSARIFWith(w io.Writer, r *report.Report, opts SARIFOptions) error {
	if r == nil {
		return errors.New("writing sarif: nil report")
	}
	log := sarifOf(r, opts)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("writing sarif: %w", err)
	}
	return nil
}

func sarifOf(r *report.Report, opts SARIFOptions) sarifLog {
	version := r.LeaktraceVersion
	if version == "" {
		version = report.BuildVersion()
	}
	run := sarifRun{
		Tool:        sarifTool{Driver: sarifDriver{Name: "leaktrace", Version: version, InformationURI: "https://github.com/leaktrace/leaktrace", Rules: []sarifRule{}}},
		Invocations: []sarifInvocation{sarifInvocationOf(r)},
		Results:     []sarifResult{},
	}
	if opts.Root != "" {
		root := filepath.ToSlash(opts.Root)
		if !strings.HasSuffix(root, "/") {
			root += "/"
		}
		run.OriginalURIBaseIDs = map[string]sarifArtifact{sarifSrcRoot: {URI: (&url.URL{Scheme: "file", Path: root}).String()}}
	}
	place := func(f report.Frame) (sarifLocation, bool) { return sarifLocationOf(f, opts) }
	rules := map[string]int{}
	rule := func(kind string) int {
		if i, ok := rules[kind]; ok {
			return i
		}
		rules[kind] = len(run.Tool.Driver.Rules)
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID:               "leaked-" + kind,
			Name:             "Leaked" + strings.ToUpper(kind[:1]) + kind[1:],
			ShortDescription: sarifMessage{Text: "A " + kind + " handle was never released"},
			FullDescription: sarifMessage{Text: "A " + kind + " handle created here was still held when its process exited (leaktrace run), " +
				"or was outstanding past --min-age (leaktrace attach)."},
			Help:          sarifHelp{Text: sarifHelpText(kind), Markdown: sarifHelpMarkdown(kind)},
			HelpURI:       sarifHelpURI,
			DefaultConfig: sarifConfig{Level: "error"},
		})
		return rules[kind]
	}
	suppressedBy := map[string]string{}
	for _, l := range r.Leaks {
		if l.SuppressedBy != "" {
			suppressedBy[l.Site] = l.SuppressedBy
		}
	}
	for _, s := range r.Sites {
		kind := mainKind(s)
		if kind == "" {
			continue
		}
		res := sarifResult{
			RuleID: "leaked-" + kind, RuleIndex: rule(kind), Level: "error",
			Message:             sarifMessage{Text: sarifText(s)},
			PartialFingerprints: map[string]string{sarifFingerprint: s.Key},
			Properties:          map[string]any{"count": s.Count, "kinds": s.Kinds},
		}
		if s.Uncounted > 0 {
			res.Properties["uncounted"] = s.Uncounted
		}
		if loc, ok := place(headline(s)); ok {
			res.Locations = []sarifLocation{loc}
		}
		if len(s.Stack) > 0 {
			st := sarifStack{Message: sarifMessage{Text: "call stack that created the handles, innermost frame first"}}
			for _, f := range s.Stack {
				loc, _ := place(f)
				st.Frames = append(st.Frames, sarifFrame{Location: loc, Module: f.Module})
			}
			res.Stacks = []sarifStack{st}
		}
		switch s.BaselineState {
		case "new", "unchanged":
			res.BaselineState = s.BaselineState
		case "grew":
			res.BaselineState = "updated"
		}
		if s.Count == 0 {
			res.Level = "note"
			if by, ok := suppressedBy[s.Key]; ok {
				res.Suppressions = []sarifSuppression{{Kind: "external", Justification: "suppressed by " + by}}
			}
		}
		run.Results = append(run.Results, res)
	}
	return sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{run}}
}

func sarifInvocationOf(r *report.Report) sarifInvocation {
	inv := sarifInvocation{ExecutionSuccessful: r.Complete, CommandLine: shellJoin(r.Command)}
	if r.Mode == "run" {
		code := r.ExitCode
		inv.ExitCode = &code
	}
	if !r.Complete {
		inv.Notifications = append(inv.Notifications, sarifN{Level: "warning",
			Message: sarifMessage{Text: fmt.Sprintf("incomplete: %d events lost; leaks may be missing or misattributed", r.Events.Lost)}})
	}
	for _, n := range r.Notes {
		inv.Notifications = append(inv.Notifications, sarifN{Level: "note", Message: sarifMessage{Text: n}})
	}
	return inv
}

// mainKind is the kind with the most leaks of a site, counted or not.
func mainKind(s report.Site) string {
	best, n := "", -1
	for _, kc := range sortedKinds(s.Kinds) {
		if kc.n > n {
			best, n = kc.kind, kc.n
		}
	}
	if best == "" && s.Uncounted > 0 {
		best = "handle"
	}
	return best
}

func sarifText(s report.Site) string {
	where := headlineText(headline(s))
	if s.Count == 0 {
		return fmt.Sprintf("%d handles leaked from %s, not counted (suppressed, in the baseline or under --min-age)", s.Uncounted, where)
	}
	msg := leakPhrase(s.Count, s.Kinds) + " from " + where
	if len(s.Targets) > 0 {
		msg += "; e.g. " + s.Targets[0]
	}
	return msg
}

func sarifHelpText(kind string) string {
	return "leaktrace traced the program from the kernel and saw this code create " + kind + " handles that were never released: " +
		"still held when their process exited (leaktrace run), or outstanding longer than --min-age (leaktrace attach). " +
		"Release each on every path (close it, or use a with/defer/RAII scope), or, when it is meant to live as long as " +
		"the process, accept it with a suppression file or a baseline (docs/suppressions.md, docs/ci.md)."
}

func sarifHelpMarkdown(kind string) string {
	return "**Leaked " + kind + " handle.** leaktrace traced the program from the kernel and saw this code create " + kind +
		" handles that were never released: still held when their process exited (`leaktrace run`), or outstanding longer than " +
		"`--min-age` (`leaktrace attach`). The result's stack shows the call path that created them.\n\n" +
		"Release each on every path (`close` it, or use a `with`/`defer`/RAII scope). A handle meant to live as long as the " +
		"process can be accepted with a [suppression file](https://github.com/leaktrace/leaktrace/blob/main/docs/suppressions.md) " +
		"or a [baseline](" + sarifHelpURI + ")."
}

// sarifLocationOf places a frame: at its file and line when it has them, and
// by its function's name in any case.
func sarifLocationOf(f report.Frame, opts SARIFOptions) (sarifLocation, bool) {
	var loc sarifLocation
	ok := false
	if f.File != "" {
		loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: artifactOf(f.File, opts)}
		if f.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
		}
		ok = true
	}
	if f.Function != "" {
		loc.LogicalLocations = []sarifLogical{{FullyQualifiedName: f.Function, Kind: "function"}}
		ok = true
	}
	if !ok {
		loc.Message = &sarifMessage{Text: headlineText(f)}
	}
	return loc, ok
}

// artifactOf places a debug-info path in the checkout when it can: under
// Root, or a Go module path of Modules, it is relative to %SRCROOT%.
func artifactOf(path string, opts SARIFOptions) sarifArtifact {
	if opts.Root != "" {
		if filepath.IsAbs(path) {
			if rel, err := filepath.Rel(opts.Root, path); err == nil && !strings.HasPrefix(rel, "..") {
				return sarifArtifact{URI: fileURI(rel), URIBaseID: sarifSrcRoot}
			}
		} else {
			for mod, dir := range opts.Modules {
				if rest, ok := strings.CutPrefix(path, mod+"/"); ok {
					return sarifArtifact{URI: fileURI(pathpkg.Join(dir, rest)), URIBaseID: sarifSrcRoot}
				}
			}
			return sarifArtifact{URI: fileURI(path), URIBaseID: sarifSrcRoot}
		}
	}
	return sarifArtifact{URI: fileURI(path)}
}

// fileURI turns a debug-info path into a URI reference: absolute paths become
// file:// URIs, relative ones stay relative (to the source root, where code
// scanning resolves them).
func fileURI(path string) string {
	if filepath.IsAbs(path) {
		return (&url.URL{Scheme: "file", Path: path}).String()
	}
	return (&url.URL{Path: filepath.ToSlash(path)}).String()
}
