package main

import (
	"slices"
	"testing"
)

func TestDebianArchiveDeb822(t *testing.T) {
	text := `Types: deb
# a snapshot, kept as a comment
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src deb
URIs: http://mirror.example/debian
Suites: bookworm
 bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: trixie
Components: main
`
	srcs := parseDeb822Sources(text)
	if len(srcs) != 2 {
		t.Fatalf("parsed %d sources, want 2 (the disabled one left out): %+v", len(srcs), srcs)
	}
	if !slices.Equal(srcs[1].Suites, []string{"bookworm", "bookworm-updates"}) {
		t.Errorf("continuation line: suites %v", srcs[1].Suites)
	}
	if got := debianArchive(srcs); got != "http://mirror.example/debian" {
		t.Errorf("archive %q, want the release's own suite, not -security", got)
	}
}

func TestDebianArchiveOneLine(t *testing.T) {
	text := `# deb http://commented.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] https://packages.example/apt cloud-sdk main
deb http://security.example/debian-security bookworm-security main
deb http://mirror.example/debian bookworm main non-free-firmware
deb http://mirror.example/debian bookworm-updates main
`
	srcs := parseOneLineSources(text)
	if len(srcs) != 4 {
		t.Fatalf("parsed %d sources, want 4: %+v", len(srcs), srcs)
	}
	if srcs[0].URI != "https://packages.example/apt" {
		t.Errorf("options not skipped: %+v", srcs[0])
	}
	// cloud-sdk has a '-': not a release's own suite.
	if got := debianArchive(srcs); got != "http://mirror.example/debian" {
		t.Errorf("archive %q", got)
	}
}

func FuzzParseSources(f *testing.F) {
	f.Add("Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\n")
	f.Add("deb [arch=amd64] http://m/debian bookworm main\n")
	f.Add(" continuation first\n\nKey without colon\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, srcs := range [][]aptSource{parseDeb822Sources(text), parseOneLineSources(text)} {
			uri := debianArchive(srcs)
			if uri != "" && !slices.ContainsFunc(srcs, func(s aptSource) bool { return s.URI == uri }) {
				t.Fatalf("archive %q is none of the sources", uri)
			}
		}
	})
}
