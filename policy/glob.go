package policy

// match reports whether s matches the glob pattern: '*' matches any run of
// characters, '/' included (function names and paths both hold slashes), and
// '?' any one character. There is no escape: suppressions name code, and code
// names hold no '*' or '?'.
func match(pattern, s string) bool {
	// Iterative, with one backtrack point: linear in practice, never exponential.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
