package result

import "testing"

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		{Kind: KindHello, Release: "6.1.0-50-cloud-amd64", Uptime: 2.5},
		{Kind: KindCheck, Check: &Check{Name: "run-leaky", Status: Fail, Detail: "refused: program sys_exit", Seconds: 3.25}},
		{Kind: KindLog, Text: "sys_exit 12009 insns"},
		{Kind: KindDone},
	}
	for _, m := range msgs {
		// The tty adds \r, and a kernel message may precede the prefix.
		line := "[    3.1] random: crng init done" + Format(m) + "\r"
		got, ok := Parse(line)
		if !ok {
			t.Fatalf("Parse(%q) not ok", line)
		}
		if Format(got) != Format(m) {
			t.Errorf("round trip: got %s, want %s", Format(got), Format(m))
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"Kernel panic - not syncing: Attempted to kill init!",
		Prefix,
		Prefix + "{",
		Prefix + `{"kind":"check"}`,
		Prefix + `{"kind":"check","check":{"name":"x","status":"maybe"}}`,
		Prefix + `{"kind":"check","check":{"status":"pass"}}`,
		Prefix + `{"kind":"reboot"}`,
	} {
		if m, ok := Parse(line); ok {
			t.Errorf("Parse(%q) = %+v, want not ok", line, m)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Format(Message{Kind: KindCheck, Check: &Check{Name: "a", Status: Pass}}))
	f.Add(Format(Message{Kind: KindHello, Release: "5.10"}))
	f.Add("garbage " + Prefix + `{"kind":"done"}`)
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := Parse(line)
		if !ok {
			return
		}
		// What parses renders again, and reads back the same.
		again, ok := Parse(Format(m))
		if !ok || Format(again) != Format(m) {
			t.Fatalf("%q parsed to %+v, which does not round-trip", line, m)
		}
		if m.Kind == KindCheck && (m.Check == nil || m.Check.Name == "") {
			t.Fatalf("check without a name: %+v", m)
		}
	})
}
