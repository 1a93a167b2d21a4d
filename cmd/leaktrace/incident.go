//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/leaktrace/leaktrace/incident"
)

// renderIncident renders path when it is an agent's fd-exhaustion incident
// rather than a report; ok is false for anything else.
func renderIncident(cmd *cobra.Command, path string, f *reportFlags) (ok bool, err error) {
	if path == "-" {
		return false, nil
	}
	in, err := os.Open(path)
	if err != nil {
		return false, nil // readReport says what is wrong
	}
	head := make([]byte, 4096)
	n, _ := io.ReadFull(in, head)
	in.Close()
	if !incident.IsIncident(head[:n]) {
		return false, nil
	}
	inc, err := incident.ReadFile(path)
	if err != nil {
		return true, &userError{code: exitUsage, msg: err.Error()}
	}
	write := func(w io.Writer) error {
		switch f.format {
		case "text":
			return incident.WriteText(w, inc, incident.TextOptions{MaxFrames: f.maxFrames, FDs: true})
		case "json":
			enc := json.NewEncoder(w)
			enc.SetIndent("", " ")
			return enc.Encode(inc)
		}
		return &userError{code: exitUsage, msg: fmt.Sprintf("--format %q: an incident renders as text or json", f.format)}
	}
	if f.output == "-" {
		return true, write(cmd.OutOrStdout())
	}
	return true, writeFile(f.output, func(w *os.File) error { return write(w) })
}
