package prune

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch/fwpath"
	"github.com/kairos-io/kairos-firmware/hwmatch/kmod"
)

// keepModules keeps the firmware each module declares. Unknown modules are problems; a failure
// to find or open the kernel is an error.
func (k *keeper) keepModules(modules []string, release string) ([]ModuleResult, string, Problems, error) {
	if release == "" {
		var err error
		if release, err = installedRelease(k.root); err != nil {
			return nil, "", nil, err
		}
	}
	kernel, err := kmod.Open(k.root.FS, release)
	if err != nil {
		return nil, "", nil, fmt.Errorf("--kernel-release %q: %w", release, err)
	}
	defer kernel.Close()
	results := []ModuleResult{}
	var problems Problems
	for _, module := range modules {
		if module == "" {
			problems = append(problems, "--keep-module \"\": an empty module name")
			continue
		}
		declared, err := kernel.Firmware(module)
		if errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, fmt.Sprintf("--keep-module %q: kernel %s has no such module (neither in %s/modules.dep nor built in)",
				module, release, k.root.Real(kernel.Dir)))
			continue
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("--keep-module %q: %v", module, err))
			continue
		}
		results = append(results, k.keepModule(module, declared, release))
	}
	k.warnings = append(k.warnings, kernel.Warnings...)
	return results, release, problems, nil
}

// keepModule keeps every variant of every firmware module declares that is in the tree.
func (k *keeper) keepModule(module string, declared []string, release string) ModuleResult {
	result := ModuleResult{Module: module, Firmware: append([]string{}, declared...), Missing: []string{}}
	rule := newRuleKeeps()
	for _, name := range declared {
		if !k.keepFirmware(name, release, rule) {
			result.Missing = append(result.Missing, name)
			k.warnings = append(k.warnings, fmt.Sprintf("--keep-module %s: declared firmware %s is not in %s (it was never there)",
				module, name, k.root.Real(k.t.dir)))
		}
	}
	if len(declared) == 0 {
		k.warnings = append(k.warnings, fmt.Sprintf("--keep-module %s declares no firmware: it keeps nothing", module))
	}
	result.Kept = len(rule.files)
	return result
}

// searchDirs are the kernel's firmware directories relative to /lib/firmware, in its order
// (fw_path[] in drivers/base/firmware_loader/main.c; see fwpath.Search).
func searchDirs(release string) []string {
	return []string{"updates/" + release, "updates", release, ""}
}

// keepFirmware keeps every variant of one declared name the kernel could load — in each search
// directory, plain, .zst and .xz — and reports whether any exists. A few modules declare
// wildcards (brcmfmac: "brcm/brcmfmac*-sdio.*.bin"); those match like --keep patterns.
func (k *keeper) keepFirmware(name, release string, rule *ruleKeeps) bool {
	if !fs.ValidPath(name) || name == "." {
		return false // absolute or climbing out: the kernel refuses such names too
	}
	found := false
	if HasWildcard(name) {
		for _, rel := range k.t.sorted() {
			e := k.t.entries[rel]
			if e.kind != directory && matchesSearched(name, rel, e.kind, release) {
				found = k.keepPath(rel, rule) || found
			}
		}
		return found
	}
	for _, dir := range searchDirs(release) {
		for _, suffix := range fwpath.Suffixes {
			found = k.keepPath(path.Join(dir, name+suffix), rule) || found
		}
	}
	return found
}

// matchesSearched reports whether pattern matches rel as a firmware name in any search directory.
func matchesSearched(pattern, rel string, kind kind, release string) bool {
	for _, dir := range searchDirs(release) {
		name := rel
		if dir != "" {
			var ok bool
			if name, ok = strings.CutPrefix(rel, dir+"/"); !ok {
				continue
			}
		}
		if matchesKeep(pattern, name, kind) {
			return true
		}
	}
	return false
}

// installedRelease is the one kernel release under /lib/modules or /usr/lib/modules.
func installedRelease(root *hostfs.Root) (string, error) {
	var releases []string
	for _, base := range kmod.ModuleDirs {
		list, err := root.FS.ReadDir(base)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("--keep-module: reading %s: %w", root.Real(base), err)
		}
		for _, d := range list {
			info, err := root.FS.Stat(path.Join(base, d.Name()))
			if err == nil && info.IsDir() && !slices.Contains(releases, d.Name()) {
				releases = append(releases, d.Name())
			}
		}
	}
	sort.Strings(releases)
	places := root.Real(kmod.ModuleDirs[0]) + " and " + root.Real(kmod.ModuleDirs[1])
	switch len(releases) {
	case 0:
		return "", fmt.Errorf("--keep-module needs a kernel, and %s hold none: install one or give --kernel-release", places)
	case 1:
		return releases[0], nil
	default:
		return "", fmt.Errorf("--keep-module: %s hold several kernels (%s): choose one with --kernel-release", places, strings.Join(releases, ", "))
	}
}
