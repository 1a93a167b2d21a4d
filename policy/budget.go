package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/leaktrace/leaktrace/event"
)

// Budget is the set of leak limits of `--budget`. Its zero value limits nothing.
type Budget struct {
	// Total, when HasTotal, limits all counted leaks.
	Total    int
	HasTotal bool
	// Kinds limits counted leaks of one kind.
	Kinds map[string]int
	// EverySite, when HasEverySite, limits each site.
	EverySite    int
	HasEverySite bool
	// Sites limits the sites a pattern selects: by key, or a glob on the
	// headline's function, "file:line" or file.
	Sites []SiteLimit
	// Mapped, when HasMapped, limits the bytes traced processes left
	// mapped (report.Mapped.Bytes): mapped=512MiB.
	Mapped    uint64
	HasMapped bool
}

// SiteLimit limits the sites that Pattern selects.
type SiteLimit struct {
	Pattern string
	Limit   int
}

// Set reports whether any limit is set.
func (b Budget) Set() bool {
	return b.HasTotal || len(b.Kinds) > 0 || b.HasEverySite || len(b.Sites) > 0 || b.HasMapped
}

// maxBudgetItems bounds one flag's list: far above a real one.
const maxBudgetItems = 1000

// ParseBudget parses the values of --budget flags; each is a comma-separated
// list of items:
//
//	N               at most N leaks in all (-1: no limit)
//	total=N         the same
//	KIND=N          at most N leaks of KIND (socket=0, file=5)
//	site=N          at most N leaks from any one site
//	site:PATTERN=N  at most N leaks from each site PATTERN selects
//	mapped=SIZE     at most SIZE bytes left mapped (512MiB, 1GiB, 4096)
//
// An empty item, or a limit given twice (in one flag or across several), is
// an error: which of two limits was meant cannot be guessed.
func ParseBudget(values []string) (Budget, error) {
	var b Budget
	n := 0
	given := map[string]string{} // limit -> the item that set it
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				return b, fmt.Errorf("empty budget item in %q (write N, KIND=N, site=N, site:PATTERN=N or mapped=SIZE, comma-separated)", v)
			}
			if n++; n > maxBudgetItems {
				return b, fmt.Errorf("more than %d budget items", maxBudgetItems)
			}
			name, err := b.parseItem(item)
			if err != nil {
				return b, fmt.Errorf("budget %q: %w", item, err)
			}
			if prev, ok := given[name]; ok {
				return b, fmt.Errorf("budget %q: the %s limit is already given by %q (give each limit once)", item, name, prev)
			}
			given[name] = item
		}
	}
	return b, nil
}

// parseItem applies one item and returns the name of the limit it sets.
func (b *Budget) parseItem(item string) (string, error) {
	if item == "-1" || item == "total=-1" {
		// "no total budget", as --budget -1 meant before limits per kind
		// and site.
		b.Total, b.HasTotal = 0, false
		return "total", nil
	}
	eq := strings.LastIndexByte(item, '=')
	if eq < 0 {
		n, err := limit(item)
		if err != nil {
			return "", err
		}
		b.Total, b.HasTotal = n, true
		return "total", nil
	}
	name, value := item[:eq], item[eq+1:]
	switch name {
	case "mapped":
		size, err := ParseSize(value)
		if err != nil {
			return "", err
		}
		b.Mapped, b.HasMapped = size, true
		return name, nil
	case event.KindMapping.String():
		return "", fmt.Errorf("mappings are limited in bytes, not counted (write mapped=SIZE, as mapped=512MiB)")
	}
	n, err := limit(value)
	if err != nil {
		return "", err
	}
	switch {
	case name == "total":
		b.Total, b.HasTotal = n, true
	case name == "site":
		b.EverySite, b.HasEverySite = n, true
	case strings.HasPrefix(name, "site:"):
		pattern := strings.TrimPrefix(name, "site:")
		if pattern == "" {
			return "", fmt.Errorf("empty site pattern (write site:FUNCTION=N, or site=N for every site)")
		}
		b.Sites = append(b.Sites, SiteLimit{Pattern: pattern, Limit: n})
	default:
		if _, ok := event.ParseKind(name); !ok {
			return "", fmt.Errorf("unknown kind %q (kinds: %s; or total, site, site:PATTERN, mapped)", name, kindNames())
		}
		if b.Kinds == nil {
			b.Kinds = map[string]int{}
		}
		b.Kinds[name] = n
	}
	return name, nil
}

func limit(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a count (want a number >= 0)", s)
	}
	return n, nil
}

// sizeUnits are the suffixes ParseSize takes: binary multiples, as memory is
// sized (MiB, not MB).
var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
	{"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}, {"B", 0},
}

// ParseSize parses a size in bytes: a whole number, optionally followed by
// B, KiB, MiB, GiB or TiB (K, M, G, T the same).
func ParseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	num, shift := s, uint(0)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("%q is not a size (want bytes, or a whole number with KiB, MiB, GiB or TiB, as 512MiB)", s)
	}
	if n > (^uint64(0))>>shift {
		return 0, fmt.Errorf("%q is too large a size", s)
	}
	return n << shift, nil
}
