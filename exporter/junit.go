package exporter

import (
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/leaktrace/leaktrace/report"
)

// JUnit XML as CI systems read it (Jenkins, GitLab, GitHub test reporters):
// <testsuites><testsuite><testcase> with <failure> or <skipped>, with only
// the attributes the common JUnit XSD (Jenkins' junit-10.xsd) allows: a
// skipped count is the suite's, <testsuites> has none.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure"`
	Skipped   *junitSkipped `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// WriteJUnit writes one test case per site, failed when the site has counted
// leaks and skipped when a policy left all of them out, and one "budget" case
// that fails when the budget was exceeded.
func WriteJUnit(w io.Writer, r *report.Report) error {
	if r == nil {
		return errors.New("writing junit: nil report")
	}
	suite := junitSuite{Name: "leaktrace " + r.Mode, Time: strconv.FormatFloat(r.Duration, 'f', 3, 64), Timestamp: r.Started}
	if len(r.Command) > 0 {
		suite.Name += ": " + shellJoin(r.Command)
	}
	suite.Properties = []junitProperty{
		{Name: "exit_code", Value: strconv.Itoa(r.ExitCode)},
		{Name: "complete", Value: strconv.FormatBool(r.Complete)},
		{Name: "events_lost", Value: strconv.FormatUint(r.Events.Lost, 10)},
	}
	for _, s := range rankedSites(r.Sites, isLive(r.Mode)) {
		c := junitCase{Name: "leaks from " + headlineText(headline(s)), Classname: "leaktrace.site." + siteClass(s), Time: "0"}
		if s.Key == "" {
			c.Name = "leaks without a stack"
		}
		switch {
		case s.Count > 0:
			c.Failure = &junitFailure{Type: "leak", Message: leakPhrase(s.Count, s.Kinds) + " from " + headlineText(headline(s)),
				Text: junitDetail(s)}
			suite.Failures++
		default:
			c.Skipped = &junitSkipped{Message: fmt.Sprintf("%d leaks not counted (suppressed, in the baseline or under --min-age)", s.Uncounted)}
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, c)
	}
	if b := r.Budget; b != nil {
		c := junitCase{Name: "leak budget", Classname: "leaktrace.budget", Time: "0", SystemOut: budgetSummary(b)}
		if b.Exceeded {
			c.Failure = &junitFailure{Type: "budget", Message: "leak budget exceeded: " + budgetSummary(b)}
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	suite.Tests = len(suite.Cases)
	doc := junitSuites{Name: "leaktrace", Tests: suite.Tests, Failures: suite.Failures, Time: suite.Time,
		Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("writing junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("writing junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("writing junit: %w", err)
	}
	return nil
}

// siteClass groups test cases by the site's main kind: CI views group by class.
func siteClass(s report.Site) string {
	if k := mainKind(s); k != "" {
		return k
	}
	return "handle"
}

func junitDetail(s report.Site) string {
	var b strings.Builder
	if len(s.Targets) > 0 {
		fmt.Fprintf(&b, "targets: %s\n", strings.Join(s.Targets, ", "))
	}
	if len(s.Exes) > 0 {
		fmt.Fprintf(&b, "exes: %s\n", strings.Join(s.Exes, ", "))
	}
	fmt.Fprintf(&b, "site: %s\n", s.Key)
	for i, f := range s.Stack {
		fmt.Fprintf(&b, "#%d %s\n", i, frameText(f))
	}
	return b.String()
}

// budgetSummary is the budget verdict as plain text: total, per kind, and the
// sites that went over.
func budgetSummary(b *report.Budget) string {
	var parts []string
	if b.Limit >= 0 {
		parts = append(parts, fmt.Sprintf("total %d of %d", b.Leaked, b.Limit))
	}
	for _, k := range b.Kinds {
		parts = append(parts, fmt.Sprintf("%s %d of %d", k.Name, k.Leaked, k.Limit))
	}
	for _, s := range b.Sites {
		if s.Exceeded {
			parts = append(parts, fmt.Sprintf("site %s %d of %d", cmp.Or(s.Where, s.Name), s.Leaked, s.Limit))
		}
	}
	return strings.Join(parts, "; ")
}
