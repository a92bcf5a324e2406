// Package strverscmp orders version strings as systemd does (strverscmp_improved in
// src/fundamental/string-util-fundamental.c): systemd-sysext stacks extensions by it, and
// dissect-image picks the newest partition label by it.
package strverscmp

// Compare compares two version strings the way systemd's strverscmp_improved()
// (src/fundamental/string-util-fundamental.c) does, returning -1, 0 or 1. dissect_image()
// uses it on partition labels so that, of two root (or /usr) partitions, the newer wins.
//
// Strings are split into numeric and alphabetic segments; every other character except the
// prefixes below is a separator and dropped. A segment may be prefixed with '~' (pre-release,
// older than anything), '-' (version/release separator), '^' (patch, newer than '-') or '.'
// (point release); a segment without prefix is newer than one with. Numeric segments compare
// by value (leading zeros ignored) and are newer than alphabetic ones; at the end, the string
// with more segments is newer, except that a '~' segment is older than the end.
func Compare(a, b string) int {
	i, j := 0, 0
	at := func(s string, k int) byte {
		if k < len(s) {
			return s[k]
		}
		return 0
	}
	for {
		for i < len(a) && !isVersionChar(a[i]) {
			i++
		}
		for j < len(b) && !isVersionChar(b[j]) {
			j++
		}
		ca, cb := at(a, i), at(b, j)
		if ca == '~' || cb == '~' {
			if r := cmpBool(ca != '~', cb != '~'); r != 0 {
				return r
			}
			i, j = i+1, j+1
		}
		ca, cb = at(a, i), at(b, j)
		if ca == 0 || cb == 0 {
			return cmpInt(int(ca), int(cb))
		}
		for _, sep := range []byte{'-', '^', '.'} {
			ca, cb = at(a, i), at(b, j)
			if ca == sep || cb == sep {
				if r := cmpBool(ca != sep, cb != sep); r != 0 {
					return r
				}
				i, j = i+1, j+1
			}
		}
		ca, cb = at(a, i), at(b, j)
		if isDigit(ca) || isDigit(cb) {
			ea, eb := i, j
			for ea < len(a) && isDigit(a[ea]) {
				ea++
			}
			for eb < len(b) && isDigit(b[eb]) {
				eb++
			}
			// a numeric segment is newer than none
			if r := cmpBool(ea != i, eb != j); r != 0 {
				return r
			}
			for i < ea && a[i] == '0' {
				i++
			}
			for j < eb && b[j] == '0' {
				j++
			}
			if r := cmpInt(ea-i, eb-j); r != 0 {
				return r
			}
			if r := cmpString(a[i:ea], b[j:eb]); r != 0 {
				return r
			}
			i, j = ea, eb
			continue
		}
		ea, eb := i, j
		for ea < len(a) && isAlpha(a[ea]) {
			ea++
		}
		for eb < len(b) && isAlpha(b[eb]) {
			eb++
		}
		n := min(ea-i, eb-j)
		if r := cmpString(a[i:i+n], b[j:j+n]); r != 0 {
			return r
		}
		if r := cmpInt(ea-i, eb-j); r != 0 {
			return r
		}
		i, j = ea, eb
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isVersionChar is systemd's is_valid_version_char: alphanumerics and "~-^.".
func isVersionChar(c byte) bool {
	return isDigit(c) || isAlpha(c) || c == '~' || c == '-' || c == '^' || c == '.'
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	x, y := 0, 0
	if a {
		x = 1
	}
	if b {
		y = 1
	}
	return cmpInt(x, y)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
