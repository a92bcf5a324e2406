package merge

// versionCompare orders image names the way systemd-sysext orders extensions before stacking
// them: strverscmp_improved() (src/fundamental/string-util-fundamental.c,
// https://github.com/systemd/systemd/blob/main/src/fundamental/string-util-fundamental.c),
// which merge_subprocess() in src/sysext/sysext.c passes to typesafe_qsort(). It returns -1, 0
// or 1.
//
// The strings are split into numeric and alphabetic segments; any other character except
// '~', '-', '^' and '.' is a separator and dropped. A segment may carry one of those prefixes:
// '~' (pre-release: older than everything, even the end of the string), '-' (older than '^'),
// '^' (older than '.'), '.' (older than no prefix). Numeric segments compare by value and are
// newer than alphabetic ones; otherwise the string with more segments is newer.
func versionCompare(a, b string) int {
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
		if at(a, i) == '~' || at(b, j) == '~' {
			if r := cmpBool(at(a, i) != '~', at(b, j) != '~'); r != 0 {
				return r
			}
			i, j = i+1, j+1
		}
		if at(a, i) == 0 || at(b, j) == 0 {
			return cmpInt(int(at(a, i)), int(at(b, j)))
		}
		// The prefixes are checked in this order, each at most once per segment.
		for _, sep := range []byte{'-', '^', '.'} {
			if at(a, i) == sep || at(b, j) == sep {
				if r := cmpBool(at(a, i) != sep, at(b, j) != sep); r != 0 {
					return r
				}
				i, j = i+1, j+1
			}
		}
		if isDigit(at(a, i)) || isDigit(at(b, j)) {
			ea, eb := i, j
			for ea < len(a) && isDigit(a[ea]) {
				ea++
			}
			for eb < len(b) && isDigit(b[eb]) {
				eb++
			}
			// A numeric segment is newer than an alphabetic (or empty) one.
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

// isVersionChar is systemd's is_valid_version_char.
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
	return x - y
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
