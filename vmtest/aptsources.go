package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// aptSource is one deb entry of an apt sources file.
type aptSource struct {
	URI        string
	Suites     []string
	Components []string
}

// codename matches a release's own suite (bookworm), not bookworm-security
// or bookworm-updates.
var codename = regexp.MustCompile(`^[a-z]+$`)

// hostMirror returns the Debian archive the host's apt already uses: the
// kernels come from where the machine gets its own packages.
func hostMirror() (string, error) {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join("/etc/apt/sources.list.d", pat))
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		parse := parseOneLineSources
		if strings.HasSuffix(f, ".sources") {
			parse = parseDeb822Sources
		}
		if uri := debianArchive(parse(string(b))); uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no Debian archive (a deb source of a release's main component) in the host's apt sources: give vmtest -mirror URI")
}

// debianArchive picks the first source that serves a release's own suite
// with its main component.
func debianArchive(srcs []aptSource) string {
	for _, s := range srcs {
		hasMain := slices.Contains(s.Components, "main")
		for _, suite := range s.Suites {
			if hasMain && codename.MatchString(suite) && strings.Contains(s.URI, "://") {
				return s.URI
			}
		}
	}
	return ""
}

// parseOneLineSources reads sources.list lines: deb [opts] URI SUITE COMP...
func parseOneLineSources(text string) []aptSource {
	var out []aptSource
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") { // options, up to the closing bracket
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 3 {
			continue
		}
		out = append(out, aptSource{URI: f[0], Suites: []string{f[1]}, Components: f[2:]})
	}
	return out
}

// parseDeb822Sources reads .sources stanzas (Types, URIs, Suites,
// Components), skipping those with Enabled: no.
func parseDeb822Sources(text string) []aptSource {
	var out []aptSource
	flush := func(st map[string]string) {
		if len(st) == 0 || strings.EqualFold(st["enabled"], "no") {
			return
		}
		if !slices.Contains(strings.Fields(st["types"]), "deb") {
			return
		}
		for _, uri := range strings.Fields(st["uris"]) {
			out = append(out, aptSource{URI: uri, Suites: strings.Fields(st["suites"]), Components: strings.Fields(st["components"])})
		}
	}
	st := map[string]string{}
	last := ""
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush(st)
			st, last = map[string]string{}, ""
		case line[0] == ' ' || line[0] == '\t': // continuation
			if last != "" {
				st[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			st[last] = strings.TrimSpace(v)
		}
	}
	flush(st)
	return out
}
