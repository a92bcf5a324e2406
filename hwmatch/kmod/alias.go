package kmod

import (
	"bytes"
	"sort"
	"strings"
)

// aliasIndex maps modalias patterns to module names. Patterns are grouped by their literal
// prefix, so a lookup does one map probe per prefix length of the modalias (about 60 for a PCI
// modalias) and runs fnmatch only on patterns that share a prefix with it, instead of scanning
// all ~26,000 patterns of a distribution kernel per device.
type aliasIndex struct {
	byPrefix map[string][]aliasEntry
	size     int
}

type aliasEntry struct {
	pattern string
	module  string
}

func newAliasIndex() *aliasIndex {
	return &aliasIndex{byPrefix: make(map[string][]aliasEntry)}
}

func (x *aliasIndex) add(pattern, module string) {
	prefix := literalPrefix(pattern)
	x.byPrefix[prefix] = append(x.byPrefix[prefix], aliasEntry{pattern: pattern, module: module})
	x.size++
}

// lookup returns the sorted, de-duplicated modules whose pattern matches modalias.
func (x *aliasIndex) lookup(modalias string) []string {
	var found []string
	for n := 0; n <= len(modalias); n++ {
		for _, e := range x.byPrefix[modalias[:n]] {
			if Match(e.pattern, modalias) {
				found = append(found, e.module)
			}
		}
	}
	return sortUnique(found)
}

// parseModulesAlias reads depmod's modules.alias: lines "alias <pattern> <module>", comments
// starting with '#'. Malformed lines are counted, not fatal: one bad line must not hide every
// other alias.
func parseModulesAlias(data []byte, x *aliasIndex) (bad int) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fields := strings.Fields(string(line))
		if len(fields) != 3 || fields[0] != "alias" {
			bad++
			continue
		}
		x.add(fields[1], normalizeName(fields[2]))
	}
	return bad
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
