package symbolize

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestDemangled(t *testing.T) {
	for in, want := range map[string]string{
		"_ZN6server4Conn4openEPKc":                        "server::Conn::open",
		"_ZN6server4Conn4openEPKci.constprop.0":           "server::Conn::open",
		"_ZNSt6vectorIiSaIiEE9push_backERKi":              "std::vector<int, std::allocator<int> >::push_back",
		"_ZN7mycrate4pool7acquire17h34c2e8e4a4d4a2c2E":    "mycrate::pool::acquire", // Rust legacy
		"_RNvNtCs15kBYyAo9fc_7mycrate4pool7acquire":       "mycrate::pool::acquire", // Rust v0
		"leak_open_file":                                  "leak_open_file",
		"github.com/acme/app/db.(*Pool).Get":              "github.com/acme/app/db.(*Pool).Get",
		"_Zgarbage":                                       "_Zgarbage",
		"_ZN4core3ptr13drop_in_place17h0123456789abcdefE": "core::ptr::drop_in_place",
	} {
		if got := demangled(in); got != want {
			t.Errorf("demangled(%q) = %q, want %q", in, got, want)
		}
	}
}

// A C++ program's frames are named as its source names them, with and
// without DWARF (the outermost name comes from the ELF symbol table).
func TestSymbolizeCxx(t *testing.T) {
	cxx, err := exec.LookPath("clang++")
	if err != nil {
		skipUnlessCI(t, "clang++ not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "conn.cc")
	os.WriteFile(src, []byte(`#include <fcntl.h>
namespace server {
struct Conn {
	int open(const char *path);
};
__attribute__((noinline)) int Conn::open(const char *path) { return ::open(path, O_RDONLY); }
}
int main() { server::Conn c; return c.open("/dev/null") < 0; }
`), 0o644)
	for _, flags := range [][]string{{"-O1", "-g"}, {"-O1", "-g0"}} {
		bin := filepath.Join(dir, "conn")
		if out, err := exec.Command(cxx, append(flags, "-o", bin, src)...).CombinedOutput(); err != nil {
			t.Fatalf("clang++ %v: %v\n%s", flags, err, out)
		}
		v := elfSymbol(t, bin, "_ZN6server4Conn4openEPKc")
		frames := NewCache(2).Symbolize(Location{Module: bin, Vaddr: v, Addr: v}, false)
		if len(frames) == 0 || frames[0].Function != "server::Conn::open" {
			t.Errorf("%v: frames %+v, want server::Conn::open", flags, frames)
		}
	}
}
