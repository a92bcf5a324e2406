package prune

import (
	"fmt"
	"path"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch/fwpath"
	"github.com/kairos-io/kairos-firmware/hwmatch/kmod"
)

// keeper decides what stays. Rules (patterns, modules) keep paths; a kept link keeps every link
// it goes through and what it leads to; a kept directory keeps everything under it.
type keeper struct {
	root       *hostfs.Root
	t          *tree
	kept       map[string]bool // non-directory entries that stay, by relative path
	targetDirs map[string]bool // directories kept links lead to: they stay even when empty
	chains     map[string]resolvedChain
	warnings   []string
}

type resolvedChain struct {
	hostfs.Chain
	err error
}

// leadsTo is where the chain ends, or, when broken, where it broke: a broken link into another
// directory still points outside the firmware directory.
func (r resolvedChain) leadsTo() string {
	if r.err != nil {
		return r.Missing
	}
	return r.Final
}

// ruleKeeps is what one rule kept: its count, and the directories it already walked (a link to
// an ancestor directory must not loop).
type ruleKeeps struct {
	files map[string]bool
	dirs  map[string]bool
}

func newRuleKeeps() *ruleKeeps {
	return &ruleKeeps{files: map[string]bool{}, dirs: map[string]bool{}}
}

func newKeeper(root *hostfs.Root, t *tree) *keeper {
	return &keeper{root: root, t: t, kept: map[string]bool{}, targetDirs: map[string]bool{}, chains: map[string]resolvedChain{}}
}

// resolve follows rel's links, once per path.
func (k *keeper) resolve(rel string) resolvedChain {
	abs := k.t.abs(rel)
	if r, ok := k.chains[abs]; ok {
		return r
	}
	c, err := k.root.ResolveChain(abs)
	r := resolvedChain{c, err}
	k.chains[abs] = r
	return r
}

// keepPath keeps rel (which may pass through directory links) and what it needs. It reports
// whether rel exists; a broken link in the tree exists and is kept as it is.
func (k *keeper) keepPath(rel string, rule *ruleKeeps) bool {
	r := k.resolve(rel)
	if r.err != nil {
		if _, inTree := k.t.entries[rel]; !inTree {
			return false
		}
		k.keepLinks(r.Links, rule)
		return true
	}
	k.keepLinks(r.Links, rule)
	final, inside := k.t.rel(r.Final)
	if !inside {
		return true // the links stay; what they lead to is not ours to keep
	}
	if e, ok := k.t.entries[final]; ok && e.kind != directory {
		k.mark(final, rule)
		return true
	}
	if len(r.Links) > 0 {
		k.targetDirs[final] = true
	}
	if rule.dirs[final] {
		return true
	}
	rule.dirs[final] = true
	for _, child := range k.t.children[final] {
		k.keepPath(child, rule)
	}
	return true
}

func (k *keeper) keepLinks(links []string, rule *ruleKeeps) {
	for _, l := range links {
		if rel, inside := k.t.rel(l); inside {
			k.mark(rel, rule)
		}
	}
}

func (k *keeper) mark(rel string, rule *ruleKeeps) {
	k.kept[rel] = true
	if rule != nil {
		rule.files[rel] = true
	}
}

// keepPattern keeps what --keep pattern matches; problem is non-empty when it keeps no file.
func (k *keeper) keepPattern(pattern string) (PatternResult, string) {
	normal := normalizePattern(pattern)
	if normal == "" {
		return PatternResult{Pattern: pattern}, fmt.Sprintf("--keep %q: an empty pattern", pattern)
	}
	rule := newRuleKeeps()
	for _, rel := range k.t.sorted() {
		if matchesKeep(normal, rel, k.t.entries[rel].kind) {
			k.keepPath(rel, rule)
		}
	}
	result := PatternResult{Pattern: pattern, Kept: len(rule.files)}
	if result.Kept > 0 {
		return result, ""
	}
	problem := fmt.Sprintf("--keep %q matches no file in %s", pattern, k.root.Real(k.t.dir))
	if strings.HasPrefix(normal, "/") {
		problem += " (patterns are relative to the firmware directory, as \"i915\" or \"regulatory*\")"
	}
	return result, problem
}

// normalizePattern drops what a shell user may add around a relative path: "./", a trailing "/".
func normalizePattern(pattern string) string {
	for strings.HasPrefix(pattern, "./") {
		pattern = strings.TrimLeft(pattern[2:], "/")
	}
	if trimmed := strings.TrimRight(pattern, "/"); trimmed != "" {
		return trimmed
	}
	return pattern
}

// compressedSuffixes are the compressed variants the kernel loads (".zst", ".xz").
var compressedSuffixes = fwpath.Suffixes[1:]

// matchesKeep reports whether pattern matches rel, or, for a compressed file, rel without its
// compression suffix (so "rtl_nic/*.fw" keeps "rtl_nic/rtl8168h-2.fw.zst").
func matchesKeep(pattern, rel string, k kind) bool {
	if k == directory {
		return kmod.Match(pattern, rel)
	}
	return MatchesFirmware(pattern, rel)
}

// MatchesFirmware reports whether pattern (fnmatch(3), flags 0) matches the stored firmware file
// rel or, when rel ends in .zst or .xz, rel without that suffix. Package split expands the
// wildcard names modules declare with it.
func MatchesFirmware(pattern, rel string) bool {
	if kmod.Match(pattern, rel) {
		return true
	}
	for _, suffix := range compressedSuffixes {
		if plain, ok := strings.CutSuffix(rel, suffix); ok && kmod.Match(pattern, plain) {
			return true
		}
	}
	return false
}

// HasWildcard reports whether a declared firmware name is a pattern (brcmfmac declares
// "brcm/brcmfmac*-sdio.*.bin") rather than a file name.
func HasWildcard(name string) bool {
	return strings.ContainsAny(name, "*?[")
}

// keepLinksToSurvivors keeps every link whose target stays (a driver may ask for the link's
// name, and a link costs nothing) and leaves links that lead outside the firmware directory
// alone. Links whose target goes are removed with it.
func (k *keeper) keepLinksToSurvivors() {
	for changed := true; changed; {
		changed = false
		survivors := k.survivingDirs()
		for _, rel := range k.t.sorted() {
			if k.t.entries[rel].kind != symlink || k.kept[rel] {
				continue
			}
			r := k.resolve(rel)
			final, inside := k.t.rel(r.leadsTo())
			if inside && (r.err != nil || !k.kept[final] && !survivors[final]) {
				continue
			}
			k.keepLinks(r.Links, nil)
			changed = true
		}
	}
}

// survivingDirs are the directories that hold something kept or that a kept link leads to,
// with their parents; "" is the firmware directory itself.
func (k *keeper) survivingDirs() map[string]bool {
	survivors := map[string]bool{"": true}
	add := func(dir string) {
		for ; dir != "." && !survivors[dir]; dir = path.Dir(dir) {
			survivors[dir] = true
		}
	}
	for rel := range k.kept {
		add(path.Dir(rel))
	}
	for dir := range k.targetDirs {
		add(dir)
	}
	return survivors
}

// linkWarnings reports kept links that are broken and links left alone because they lead
// outside the firmware directory.
func (k *keeper) linkWarnings() []string {
	var warnings []string
	for _, rel := range k.t.sorted() {
		if k.t.entries[rel].kind != symlink || !k.kept[rel] {
			continue
		}
		r := k.resolve(rel)
		if _, inside := k.t.rel(r.leadsTo()); !inside {
			warnings = append(warnings, fmt.Sprintf("link %s leads outside the firmware directory, to %s: left alone",
				k.root.Real(k.t.abs(rel)), k.root.Real(r.leadsTo())))
		} else if r.err != nil {
			warnings = append(warnings, fmt.Sprintf("kept link %s is broken: %v", k.root.Real(k.t.abs(rel)), unwrapPath(r.err)))
		}
	}
	return warnings
}
