package kmod

import (
	"bytes"
	"slices"
	"sort"
	"strings"
)

// aliasIndex maps modalias patterns to module names, grouped by literal prefix so that a lookup
// does one map probe per prefix length of the modalias and runs fnmatch only on patterns that
// share a prefix with it. It holds the few built-in modules' aliases; loadable modules' come
// from depmod's own trie, modules.alias.bin (resolveFromIndex), or, without it, from one scan of
// modules.alias per batch of modaliases (resolveFromAliasFile), which costs less than indexing
// its ~26,000 lines on every boot.
type aliasIndex struct {
	byPrefix map[string][]aliasEntry
}

type aliasEntry struct {
	pattern string
	module  string
}

func newAliasIndex() *aliasIndex {
	return &aliasIndex{byPrefix: make(map[string][]aliasEntry)}
}

// add records a pattern, normalized as kmod does (normalizeAlias); invalid ones are left out,
// as depmod leaves them out of modules.builtin.alias.bin.
func (x *aliasIndex) add(pattern, module string) {
	pattern, ok := normalizeAlias(pattern)
	if !ok {
		return
	}
	prefix := literalPrefix(pattern)
	x.byPrefix[prefix] = append(x.byPrefix[prefix], aliasEntry{pattern: pattern, module: module})
}

// lookup returns the sorted, de-duplicated modules whose pattern matches modalias (normalized),
// and those of them matching through a pattern that names the product (NamesProduct).
func (x *aliasIndex) lookup(modalias string) (found, specific []string) {
	for n := 0; n <= len(modalias); n++ {
		for _, e := range x.byPrefix[modalias[:n]] {
			if Match(e.pattern, modalias) {
				found = append(found, e.module)
				if NamesProduct(e.pattern) {
					specific = append(specific, e.module)
				}
			}
		}
	}
	return sortUnique(found), sortUnique(specific)
}

// NamesProduct reports whether a PCI or USB alias pattern spells out the vendor and product
// ids in full ("pci:v000010ECd00008168sv*...", "usb:v2357p011Ed*..."), as
// MODULE_DEVICE_TABLE entries for a given device do; entries that match any product of a
// vendor or class (PCI_ANY_ID, USB_INTERFACE_INFO) give wildcards there. The layouts are those
// of scripts/mod/file2alias.c (do_pci_entry, do_usb_entry).
func NamesProduct(pattern string) bool {
	literal := func(s string) bool { return !strings.ContainsAny(s, "*?[\\") }
	switch {
	case strings.HasPrefix(pattern, "pci:v"):
		// pci:v%08Xd%08X...
		return len(pattern) >= 22 && pattern[13] == 'd' && literal(pattern[5:13]) && literal(pattern[14:22])
	case strings.HasPrefix(pattern, "usb:v"):
		// usb:v%04Xp%04X...
		return len(pattern) >= 14 && pattern[9] == 'p' && literal(pattern[5:9]) && literal(pattern[10:14])
	}
	return false
}

// normalizeAlias is libkmod's alias_normalize (shared/util.c), which depmod applies to every
// pattern it stores in modules.alias.bin and modprobe to every alias it looks up: '-' becomes
// '_' outside bracket expressions. A ']' outside brackets or an unterminated '[' makes the alias
// invalid (depmod leaves such patterns out of the index; modprobe rejects such aliases), and a
// NUL ends it, as it ends a C string. The text path applies it too, so that both paths, and
// modprobe, answer alike.
func normalizeAlias(alias string) (string, bool) {
	if strings.IndexAny(alias, "-[]\x00") < 0 {
		return alias, true
	}
	buf := []byte(alias)
	for i := 0; i < len(buf); i++ {
		switch buf[i] {
		case '-':
			buf[i] = '_'
		case ']':
			return "", false
		case '[':
			for i < len(buf) && buf[i] != ']' && buf[i] != 0 {
				i++
			}
			if i == len(buf) || buf[i] != ']' {
				return "", false
			}
		case 0:
			return string(buf[:i]), true
		}
	}
	return string(buf), true
}

// aliasQuery is a batch of modaliases to resolve: their normalized forms, sorted and unique,
// and which of the caller's modaliases each stands for. Empty and invalid modaliases match
// nothing.
type aliasQuery struct {
	keys      []string
	originals map[string][]string
}

func newAliasQuery(modaliases []string) *aliasQuery {
	q := &aliasQuery{originals: make(map[string][]string, len(modaliases))}
	for _, m := range modaliases {
		if m == "" {
			continue
		}
		key, ok := normalizeAlias(m)
		if !ok {
			continue
		}
		if _, seen := q.originals[key]; !seen {
			q.keys = append(q.keys, key)
		}
		if !slices.Contains(q.originals[key], m) {
			q.originals[key] = append(q.originals[key], m)
		}
	}
	sort.Strings(q.keys)
	return q
}

// results turns answers by normalized key into answers by the caller's modaliases, each list
// sorted and de-duplicated.
func (q *aliasQuery) results(byKey map[string][]string) map[string][]string {
	out := make(map[string][]string, len(byKey))
	for key, mods := range byKey {
		mods = sortUnique(mods)
		for i, m := range q.originals[key] {
			if i > 0 {
				mods = slices.Clone(mods) // no two answers share a slice
			}
			out[m] = mods
		}
	}
	return out
}

// resolveFromIndex answers a batch from modules.alias.bin: one wildcard lookup per modalias,
// which walks only the trie nodes whose patterns can match it.
func resolveFromIndex(x *index, modaliases []string) (found, specific map[string][]string, err error) {
	q := newAliasQuery(modaliases)
	byKey, specByKey := make(map[string][]string), make(map[string][]string)
	for _, key := range q.keys {
		matches, err := x.lookupWild(key)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range matches {
			name := normalizeName(m.value)
			byKey[key] = append(byKey[key], name)
			if NamesProduct(m.pattern) {
				specByKey[key] = append(specByKey[key], name)
			}
		}
	}
	return q.results(byKey), q.results(specByKey), nil
}

// resolveFromAliasFile matches every pattern of depmod's modules.alias ("alias <pattern>
// <module>" lines, '#' comments) against a batch of modaliases in one pass: the fallback when
// modules.alias.bin is missing or unusable. Patterns and modaliases are normalized as
// depmod and modprobe do (normalizeAlias). A pattern's literal prefix is looked up by binary
// search in the sorted modaliases, so fnmatch runs only on the few pairs that can match and the
// pass allocates only for those. Malformed lines are counted, not fatal: one bad line must not
// hide every other alias.
func resolveFromAliasFile(data []byte, modaliases []string) (found, specific map[string][]string, bad int) {
	q := newAliasQuery(modaliases)
	sorted := q.keys
	byKey, specByKey := make(map[string][]string), make(map[string][]string)
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		pattern, module, ok := splitAliasLine(line)
		if !ok {
			bad++
			continue
		}
		prefix := literalPrefixBytes(pattern)
		first := sort.Search(len(sorted), func(i int) bool { return compareAliasPrefix(sorted[i], prefix) >= 0 })
		var normalized string
		for i, m := range sorted[first:] {
			if !hasAliasPrefix(m, prefix) {
				break
			}
			if i == 0 {
				if normalized, ok = normalizeAlias(string(pattern)); !ok {
					break // depmod leaves it out of modules.alias.bin
				}
			}
			if Match(normalized, m) {
				name := normalizeName(string(module))
				byKey[m] = append(byKey[m], name)
				if NamesProduct(normalized) {
					specByKey[m] = append(specByKey[m], name)
				}
			}
		}
	}
	return q.results(byKey), q.results(specByKey), bad
}

// splitAliasLine splits a trimmed "alias <pattern> <module>" line (fields separated by blanks)
// without allocating: it runs once per line of a 26,000-line file on every boot. A NUL byte
// makes the line malformed: depmod writes C strings.
func splitAliasLine(line []byte) (pattern, module []byte, ok bool) {
	rest, found := bytes.CutPrefix(line, []byte("alias"))
	if !found || len(rest) == 0 || !isBlank(rest[0]) || bytes.IndexByte(rest, 0) >= 0 {
		return nil, nil, false
	}
	rest = bytes.TrimLeft(rest, " \t")
	end := 0
	for end < len(rest) && !isBlank(rest[end]) {
		end++
	}
	if end == 0 || end == len(rest) {
		return nil, nil, false
	}
	pattern, module = rest[:end], bytes.TrimLeft(rest[end:], " \t")
	for _, c := range module {
		if isBlank(c) {
			return nil, nil, false
		}
	}
	return pattern, module, len(module) > 0
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func literalPrefixBytes(pattern []byte) []byte {
	for i, c := range pattern {
		switch c {
		case '*', '?', '[', '\\':
			return pattern[:i]
		}
	}
	return pattern
}

// compareAliasPrefix is strings.Compare(s, normalizeAlias(prefix)) for a literal prefix (no
// brackets: '-' becomes '_'), without converting prefix.
func compareAliasPrefix(s string, prefix []byte) int {
	n := min(len(s), len(prefix))
	for i := 0; i < n; i++ {
		c := prefix[i]
		if c == '-' {
			c = '_'
		}
		if s[i] != c {
			if s[i] < c {
				return -1
			}
			return 1
		}
	}
	return len(s) - len(prefix)
}

func hasAliasPrefix(s string, prefix []byte) bool {
	return len(s) >= len(prefix) && compareAliasPrefix(s[:len(prefix)], prefix) == 0
}

// builtinModinfo is modules.builtin.modinfo: NUL-separated "<module>.<key>=<value>" records
// that the kernel build writes for modules linked into the kernel image.
type builtinModinfo struct {
	firmware map[string][]string
	modules  map[string]bool
}

func parseBuiltinModinfo(data []byte, aliases *aliasIndex) *builtinModinfo {
	info := &builtinModinfo{firmware: make(map[string][]string), modules: make(map[string]bool)}
	for _, rec := range bytes.Split(data, []byte{0}) {
		dot := bytes.IndexByte(rec, '.')
		eq := bytes.IndexByte(rec, '=')
		if dot <= 0 || eq < dot {
			continue
		}
		module := normalizeName(string(rec[:dot]))
		key, value := string(rec[dot+1:eq]), string(rec[eq+1:])
		info.modules[module] = true
		switch key {
		case "alias":
			aliases.add(value, module)
		case "firmware":
			info.firmware[module] = append(info.firmware[module], value)
		}
	}
	return info
}

// normalizeName makes a module name as kmod compares them: '-' and '_' are the same.
func normalizeName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

func sortUnique(s []string) []string {
	if len(s) < 2 {
		return s
	}
	sort.Strings(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}
