package symbolize

import (
	"strings"

	"github.com/ianlancetaylor/demangle"
)

// demangled is the name a C++ or Rust symbol has in its source
// (server::Conn::open, not _ZN6server4Conn4openEPKc): what stacks, site
// keys and metric labels show. Parameters, clone suffixes and Rust's
// hashes are left out, so overloads and rebuilds share a name; any other
// name is returned as it is.
func demangled(name string) string {
	if !strings.HasPrefix(name, "_Z") && !strings.HasPrefix(name, "_R") && !strings.HasPrefix(name, "__Z") {
		return name
	}
	return demangle.Filter(name, demangle.NoParams)
}
