// Package kmod reads a kernel's module metadata the way kmod does: which modules serve a
// modalias (modules.alias, modules.builtin.modinfo) and which firmware files each module declares
// (the .modinfo section of the module file, modules.builtin.modinfo for built-in modules).
package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	vfs "github.com/twpayne/go-vfs/v4"
)

// Kernel is one kernel release's module metadata under a root.
type Kernel struct {
	Release string
	// Dir is the modules directory as seen under the root, e.g. /lib/modules/6.1.0-56-amd64.
	Dir string
	// Warnings lists metadata that was missing or malformed; lookups still answer from the rest.
	Warnings []string

	fsys           vfs.FS
	aliasFile      []byte // modules.alias, scanned per Resolve
	badAliasLines  int
	builtinAliases *aliasIndex
	builtin        *builtinModinfo
	paths          map[string]string // module name -> file path under Dir (from modules.dep)
	firmware       map[string][]string
}

// ModuleDirs are the places a kernel's modules live, in the order kmod searches them on a
// merged-/usr system.
var ModuleDirs = []string{"/lib/modules", "/usr/lib/modules"}

// Open reads the metadata of kernel release under fsys. A missing modules directory is an error
// wrapping fs.ErrNotExist; missing or malformed files inside it become Warnings.
func Open(fsys vfs.FS, release string) (*Kernel, error) {
	if release == "" || strings.ContainsAny(release, "/\x00") || release == "." || release == ".." {
		return nil, fmt.Errorf("kernel release %q is not a valid directory name", release)
	}
	k := &Kernel{
		Release:        release,
		fsys:           fsys,
		builtinAliases: newAliasIndex(),
		firmware:       make(map[string][]string),
	}
	for _, base := range ModuleDirs {
		dir := path.Join(base, release)
		if info, err := fsys.Stat(dir); err == nil && info.IsDir() {
			k.Dir = dir
			break
		}
	}
	if k.Dir == "" {
		return nil, fmt.Errorf("no modules directory for kernel %s (looked in %s): %w",
			release, strings.Join(ModuleDirs, ", "), fs.ErrNotExist)
	}

	if data, err := k.readMeta("modules.alias"); err == nil {
		k.aliasFile = data
	}
	if data, err := k.readMeta("modules.builtin.modinfo"); err == nil {
		k.builtin = parseBuiltinModinfo(data, k.builtinAliases)
	} else {
		k.builtin = &builtinModinfo{firmware: map[string][]string{}, modules: map[string]bool{}}
	}
	return k, nil
}

func (k *Kernel) readMeta(name string) ([]byte, error) {
	p := path.Join(k.Dir, name)
	data, err := k.fsys.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			k.warn("%s is missing (run depmod %s): lookups that need it find nothing", p, k.Release)
		} else {
			k.warn("%s: %v", p, err)
		}
	}
	return data, err
}

func (k *Kernel) warn(format string, args ...any) {
	k.Warnings = append(k.Warnings, fmt.Sprintf(format, args...))
}

// Resolve returns, for each modalias, the modules whose alias matches it, as
// `modprobe -R <modalias>` answers: loadable modules from modules.alias first and, only when none
// matches, built-in modules (kmod_module_new_from_lookup in libkmod/libkmod-module.c stops at the
// first source that finds something). Modaliases nothing matches are absent from the map.
func (k *Kernel) Resolve(modaliases []string) map[string][]string {
	found, _ := k.ResolveSpecific(modaliases)
	return found
}

// ResolveSpecific is Resolve that also returns, for each modalias, the modules among those
// found through a pattern that names the device's product (NamesProduct): the drivers written
// for that device, as opposed to catch-all entries such as amdgpu's PCI_ANY_ID one for future
// ASICs (drivers/gpu/drm/amd/amdgpu/amdgpu_drv.c, pciidlist).
func (k *Kernel) ResolveSpecific(modaliases []string) (found, specific map[string][]string) {
	found, specific, bad := resolveFromAliasFile(k.aliasFile, modaliases)
	if bad > 0 && k.badAliasLines == 0 {
		k.warn("%s/modules.alias: %d malformed lines skipped", k.Dir, bad)
	}
	k.badAliasLines = bad
	for _, m := range modaliases {
		if m == "" || len(found[m]) > 0 {
			continue
		}
		if mods, spec := k.builtinAliases.lookup(m); len(mods) > 0 {
			found[m], specific[m] = mods, spec
		}
	}
	delete(found, "")
	delete(specific, "")
	return found, specific
}

// Modules is Resolve for one modalias.
func (k *Kernel) Modules(modalias string) []string {
	return k.Resolve([]string{modalias})[modalias]
}

// IsBuiltin reports whether module is linked into the kernel image.
func (k *Kernel) IsBuiltin(module string) bool {
	return k.builtin.modules[normalizeName(module)]
}

// Firmware returns the firmware names module declares (MODULE_FIRMWARE), in declaration order,
// as `modinfo -F firmware <module>` prints them.
func (k *Kernel) Firmware(module string) ([]string, error) {
	module = normalizeName(module)
	if fw, ok := k.firmware[module]; ok {
		return fw, nil
	}
	if k.builtin.modules[module] {
		fw := k.builtin.firmware[module]
		k.firmware[module] = fw
		return fw, nil
	}
	file, err := k.modulePath(module)
	if err != nil {
		return nil, err
	}
	fw, err := k.readModuleFirmware(file)
	if err != nil {
		return nil, fmt.Errorf("module %s: %s: %w", module, file, err)
	}
	k.firmware[module] = fw
	return fw, nil
}

// readModuleFirmware reads the firmware= entries of a module file. An uncompressed module is
// read in place (ELF headers and the .modinfo section only: modules such as amdgpu are tens of
// MiB); a compressed one is decompressed whole first.
func (k *Kernel) readModuleFirmware(file string) ([]string, error) {
	f, err := k.fsys.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if ra, ok := f.(io.ReaderAt); ok {
		head := make([]byte, 6)
		if n, _ := ra.ReadAt(head, 0); n >= 4 && !isCompressed(head[:n]) {
			return modinfoValues(ra, "firmware")
		}
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxModuleSize+1))
	if err != nil {
		return nil, err
	}
	elfData, err := decompressModule(raw)
	if err != nil {
		return nil, err
	}
	return modinfoValues(bytes.NewReader(elfData), "firmware")
}

// modulePath finds a module's file through modules.dep, read on first use: most runs only need
// the few modules that match the machine's devices.
func (k *Kernel) modulePath(module string) (string, error) {
	if k.paths == nil {
		k.paths = make(map[string]string)
		if data, err := k.readMeta("modules.dep"); err == nil {
			k.paths = parseModulesDep(data)
		}
	}
	rel, ok := k.paths[module]
	if !ok {
		return "", fmt.Errorf("module %s: not in %s/modules.dep: %w", module, k.Dir, fs.ErrNotExist)
	}
	if path.IsAbs(rel) { // very old depmod wrote absolute paths
		return rel, nil
	}
	return path.Join(k.Dir, rel), nil
}

// parseModulesDep maps module names to their file paths from modules.dep lines
// "kernel/drivers/net/foo.ko.xz: dep1.ko dep2.ko". Keys and values are slices of one string
// holding the file, not an allocation per line.
func parseModulesDep(data []byte) map[string]string {
	text := string(data)
	paths := make(map[string]string, strings.Count(text, "\n"))
	for len(text) > 0 {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		file := line[:colon]
		paths[moduleNameFromPath(file)] = file
	}
	return paths
}

// moduleNameFromPath turns ".../rtw88_8821au.ko.zst" into "rtw88_8821au".
func moduleNameFromPath(file string) string {
	base := file[strings.LastIndexByte(file, '/')+1:]
	if i := strings.Index(base, ".ko"); i > 0 {
		base = base[:i]
	}
	if strings.IndexByte(base, '-') < 0 {
		return base
	}
	return normalizeName(base)
}
