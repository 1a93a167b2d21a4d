package policy

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/report"
)

// A suppression file lists leaks that are known and accepted, one rule a line:
//
//	# the connection pool lives as long as the process
//	fun:db.connect
//	kind:socket target:tcp *:5432*
//	file:*/vendor/* kind:file
//
// A rule is one or more FIELD:PATTERN terms separated by spaces; a leak is
// suppressed when every term of one rule matches it. '#' starts a comment.
// docs/suppressions.md is the reference.

// maxRules bounds a suppression file: far above a real one.
const maxRules = 10000

// fields are the terms a rule can hold, with what each one matches.
var fields = map[string]func(l *report.Leak, pattern string) bool{
	// fun: any frame's function.
	"fun": func(l *report.Leak, p string) bool {
		return anyFrame(l, func(f report.Frame) bool { return f.Function != "" && match(p, f.Function) })
	},
	// file: any frame's source file, "file" or "file:line".
	"file": func(l *report.Leak, p string) bool {
		return anyFrame(l, func(f report.Frame) bool {
			return f.File != "" && (match(p, f.File) || match(p, fmt.Sprintf("%s:%d", f.File, f.Line)))
		})
	},
	// module: any frame's binary or shared library.
	"module": func(l *report.Leak, p string) bool {
		return anyFrame(l, func(f report.Frame) bool { return f.Module != "" && match(p, f.Module) })
	},
	"target": func(l *report.Leak, p string) bool { return match(p, l.Target) },
	"kind":   func(l *report.Leak, p string) bool { return match(p, l.Kind) },
	// exe: the executable, or the comm when the path is unknown.
	"exe": func(l *report.Leak, p string) bool {
		return match(p, l.Exe) || l.Exe == "" && match(p, l.Comm)
	},
	"site": func(l *report.Leak, p string) bool { return match(p, l.Site) },
}

const fieldNames = "fun, file, module, target, kind, exe, site"

func anyFrame(l *report.Leak, ok func(report.Frame) bool) bool {
	for _, f := range l.Stack {
		if ok(f) {
			return true
		}
	}
	return false
}

// Suppressions is a parsed set of rules.
type Suppressions struct {
	rules []rule
}

type rule struct {
	where string // "FILE:LINE: text", what a suppressed leak's SuppressedBy says
	terms []term
}

type term struct {
	field   string
	pattern string
}

// Len is the number of rules.
func (s *Suppressions) Len() int { return len(s.rules) }

// ParseSuppressions reads a suppression file; name labels its rules and errors.
// A malformed line is an error naming the line and what is wrong with it.
func ParseSuppressions(rd io.Reader, name string) (*Suppressions, error) {
	s := &Suppressions{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		r, err := parseRule(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if len(s.rules) >= maxRules {
			return nil, fmt.Errorf("%s:%d: more than %d rules", name, n, maxRules)
		}
		r.where = fmt.Sprintf("%s:%d: %s", name, n, text)
		s.rules = append(s.rules, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return s, nil
}

// parseRule splits a rule into terms. A word that does not start with a known
// "FIELD:" continues the pattern before it, so patterns can hold spaces, as
// socket targets do ("target:tcp * -> *:5432").
func parseRule(text string) (rule, error) {
	var r rule
	for _, w := range strings.Fields(text) {
		field, pattern, ok := strings.Cut(w, ":")
		if _, known := fields[field]; ok && known {
			r.terms = append(r.terms, term{field: field, pattern: pattern})
			continue
		}
		if len(r.terms) == 0 {
			if ok {
				return r, fmt.Errorf("unknown field %q (fields: %s)", field, fieldNames)
			}
			return r, fmt.Errorf("%q is not FIELD:PATTERN (fields: %s)", w, fieldNames)
		}
		last := &r.terms[len(r.terms)-1]
		last.pattern += " " + w
	}
	for _, t := range r.terms {
		if err := checkTerm(t.field, t.pattern); err != nil {
			return r, err
		}
	}
	return r, nil
}

func checkTerm(field, pattern string) error {
	{
		if pattern == "" {
			return fmt.Errorf("%s: has an empty pattern (use * to match anything)", field)
		}
		if field == "kind" && !hasWildcard(pattern) {
			if _, ok := event.ParseKind(pattern); !ok {
				return fmt.Errorf("unknown kind %q (kinds: %s)", pattern, kindNames())
			}
		}
	}
	return nil
}

func hasWildcard(p string) bool { return strings.ContainsAny(p, "*?") }

// Match returns the first rule that suppresses l, as "FILE:LINE: RULE", or "".
func (s *Suppressions) Match(l *report.Leak) string {
	if s == nil {
		return ""
	}
	for _, r := range s.rules {
		if r.matches(l) {
			return r.where
		}
	}
	return ""
}

func (r rule) matches(l *report.Leak) bool {
	for _, t := range r.terms {
		if !fields[t.field](l, t.pattern) {
			return false
		}
	}
	return true
}

func kindNames() string {
	var names []string
	for _, k := range event.Kinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}

// Append adds o's rules after s's: the first matching rule names a suppression.
func (s *Suppressions) Append(o *Suppressions) {
	if o != nil {
		s.rules = append(s.rules, o.rules...)
	}
}
