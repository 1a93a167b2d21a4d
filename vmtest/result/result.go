// Package result is the line protocol between vmtest's guest init and the
// host harness: one JSON message per line on the guest's second serial port,
// after a fixed prefix so that anything else on the line is ignored.
package result

import (
	"encoding/json"
	"strings"
)

// Prefix starts every protocol line.
const Prefix = "VMTEST "

// Status of one check.
type Status string

// The outcomes of a check.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip" // the binary lacks the feature (e.g. no verifier-report yet)
)

// Kinds of message.
const (
	KindHello = "hello" // init is running: the kernel's release and uptime
	KindCheck = "check" // one check's outcome
	KindLog   = "log"   // a line to show the user (verifier figures)
	KindDone  = "done"  // every check ran; the guest powers off next
)

// Check is one check's outcome.
type Check struct {
	Name    string  `json:"name"`
	Status  Status  `json:"status"`
	Detail  string  `json:"detail,omitempty"` // one line: what was found, or why it failed
	Seconds float64 `json:"seconds"`
}

// Message is one protocol line.
type Message struct {
	Kind    string  `json:"kind"`
	Release string  `json:"release,omitempty"` // hello: uname -r
	Uptime  float64 `json:"uptime,omitempty"`  // hello: seconds since the kernel started
	Check   *Check  `json:"check,omitempty"`
	Text    string  `json:"text,omitempty"` // log
}

// Format renders m as one protocol line, without the newline.
func Format(m Message) string {
	b, err := json.Marshal(m)
	if err != nil { // only plain fields: cannot happen
		panic(err)
	}
	return Prefix + string(b)
}

// Parse reads a protocol message from a line of serial output. Text before the
// prefix (a kernel message that interleaved) and a trailing \r are ignored;
// ok is false for lines that carry no well-formed message.
func Parse(line string) (m Message, ok bool) {
	i := strings.Index(line, Prefix)
	if i < 0 {
		return m, false
	}
	s := strings.TrimRight(line[i+len(Prefix):], "\r\n")
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return Message{}, false
	}
	switch m.Kind {
	case KindHello, KindLog, KindDone:
		return m, true
	case KindCheck:
		if m.Check == nil || m.Check.Name == "" {
			return Message{}, false
		}
		switch m.Check.Status {
		case Pass, Fail, Skip:
			return m, true
		}
	}
	return Message{}, false
}
