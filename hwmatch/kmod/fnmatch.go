package kmod

// Match reports whether s matches the shell pattern as fnmatch(3) does with flags 0, which is how
// kmod matches a device's modalias against modules.alias (libkmod/libkmod-index.c calls
// fnmatch(pattern, key, 0)). Unlike path.Match, '*' and '?' also match '/', which occurs in
// modaliases such as "of:N/soc/..." and in some acpi ids. Supported: '*', '?', bracket
// expressions with ranges and '!' or '^' negation (a leading ']' is literal), and '\' escaping
// the next character. POSIX classes like [[:alpha:]] never occur in modules.alias (none in
// Debian's 6.1 kernel) and are matched literally, as their characters.
//
// Written here because no Go library implements glibc's flag-0 semantics: path.Match and
// filepath.Match stop '*' at '/', and the fnmatch packages on the proxy are unmaintained.
// A malformed pattern (an unterminated '[') matches '[' literally, as glibc does.
func Match(pattern, s string) bool {
	return match(pattern, s)
}

// match is Match for a pattern held in a string or, during an index walk, in a byte slice.
func match[P string | []byte](pattern P, s string) bool {
	// Iterative matcher with single-star backtracking: O(len(pattern)*len(s)) worst case, no
	// recursion, so a hostile pattern cannot blow the stack.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if ok, next, valid := matchBracket(pattern, p, s[i]); valid {
					if ok {
						p = next
						i++
						continue
					}
				} else if s[i] == '[' { // unterminated bracket: a literal '['
					p++
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					if pattern[p+1] == s[i] {
						p += 2
						i++
						continue
					}
				} else if s[i] == '\\' {
					p++
					i++
					continue
				}
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last '*' swallow one more character and retry from there.
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchBracket matches c against the bracket expression starting at pattern[start] == '['.
// valid is false when the expression has no closing ']'.
func matchBracket[P string | []byte](pattern P, start int, c byte) (matched bool, next int, valid bool) {
	p := start + 1
	negate := false
	if p < len(pattern) && (pattern[p] == '!' || pattern[p] == '^') {
		negate = true
		p++
	}
	first := true
	for p < len(pattern) {
		lo := pattern[p]
		if lo == ']' && !first {
			return matched != negate, p + 1, true
		}
		first = false
		if lo == '\\' && p+1 < len(pattern) {
			p++
			lo = pattern[p]
		}
		p++
		hi := lo
		if p+1 < len(pattern) && pattern[p] == '-' && pattern[p+1] != ']' {
			hi = pattern[p+1]
			if hi == '\\' && p+2 < len(pattern) {
				hi = pattern[p+2]
				p++
			}
			p += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return false, 0, false
}

// literalPrefix is the part of pattern before its first special character: every string the
// pattern matches starts with it, which is what the alias index keys on.
func literalPrefix(pattern string) string {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '*', '?', '[', '\\':
			return pattern[:i]
		}
	}
	return pattern
}
