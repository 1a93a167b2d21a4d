package exporter

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/leaktrace/leaktrace/report"
)

const schemaDoc = "../docs/json-schema.md"

// TestSchemaDoc keeps docs/json-schema.md true: its example is a document this
// package reads and writes byte for byte, its text rendering is current, and every
// JSON field of the model has a row in its tables.
func TestSchemaDoc(t *testing.T) {
	doc, err := os.ReadFile(schemaDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(json|text)\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) != 2 || blocks[0][1] != "json" || blocks[1][1] != "text" {
		t.Fatalf("want one json and one text example, in that order; found %d blocks", len(blocks))
	}
	example, text := blocks[0][2], blocks[1][2]

	r, err := ReadJSON(strings.NewReader(example))
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	var out bytes.Buffer
	if err := WriteJSON(&out, r); err != nil {
		t.Fatal(err)
	}
	if out.String() != example {
		t.Errorf("the example is not what WriteJSON writes; WriteJSON gives:\n%s", out.String())
	}
	out.Reset()
	if err := WriteText(&out, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if out.String() != text {
		t.Errorf("the text example is stale; WriteText gives:\n%s", out.String())
	}

	for _, v := range []any{report.Report{}, report.Events{}, report.Leak{}, report.Frame{}, report.Site{}, report.Process{}, report.Budget{},
		report.Executable{}, report.BudgetLimit{}, report.Policy{}, report.HeldAtExit{}, report.Young{}, report.Mapped{}, report.MappedSite{}, report.BudgetBytes{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if !strings.Contains(string(doc), "| `"+name+"` |") {
				t.Errorf("%s.%s (%q) is not documented in %s", typ.Name(), typ.Field(i).Name, name, schemaDoc)
			}
		}
	}
}
