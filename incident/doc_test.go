package incident

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// docs/incident-schema.md has a row for every JSON field and names the
// schema this build writes.
func TestSchemaDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/incident-schema.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "today `"+Schema+"`") {
		t.Errorf("the doc does not name the schema written, %s", Schema)
	}
	for _, v := range []any{Incident{}, Memory{}, AgeBucket{}, Site{}, FD{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if !strings.Contains(string(doc), "| `"+name+"` |") {
				t.Errorf("%s.%s (%q) has no row in docs/incident-schema.md", typ.Name(), typ.Field(i).Name, name)
			}
		}
	}
	typ := reflect.TypeOf(Summary{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("Summary.%s (%q) is not named in docs/incident-schema.md", typ.Field(i).Name, name)
		}
	}
}
