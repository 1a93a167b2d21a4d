//go:build linux

package session

import (
	"github.com/leaktrace/leaktrace/event"
	"github.com/leaktrace/leaktrace/report"
)

// SiteInfo names the call site of a stack, as reports group it.
type SiteInfo struct {
	Key      string       // the report's site key; "" for no stack
	Headline report.Frame // the frame that best names the user's code
	Internal bool         // made by a language runtime for itself
	// Stack is every frame, innermost first, Python frames merged in.
	Stack []report.Frame
}

// Site symbolizes stack id. Callers that ask often should remember the answer
// until Compact returns id: an id never names another stack.
func (s *Session) Site(id event.StackID) SiteInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	sy := s.symbolize(id)
	return SiteInfo{Key: sy.key, Headline: sy.headline, Internal: sy.internal, Stack: sy.frames}
}

// StacksDropped is how many times a new stack was not kept because
// Options.MaxStacks stacks were already kept; its handles count with no stack.
func (s *Session) StacksDropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stacksDropped
}
