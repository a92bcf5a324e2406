// Package kmod reads a kernel's module metadata the way kmod does: which modules serve a
// modalias (modules.alias, modules.builtin.modinfo) and which firmware files each module declares
// (the .modinfo section of the module file, modules.builtin.modinfo for built-in modules).
package kmod

import (
	"bytes"
	"errors"
	"fmt"
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
	aliases        *aliasIndex
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
		aliases:        newAliasIndex(),
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
		if bad := parseModulesAlias(data, k.aliases); bad > 0 {
			k.warn("%s/modules.alias: %d malformed lines skipped", k.Dir, bad)
		}
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

// Modules returns the modules whose alias matches modalias, as `modprobe -R <modalias>` does:
// loadable modules from modules.alias first and, only when none matches, built-in modules
// (kmod_module_new_from_lookup stops at the first source that finds something).
func (k *Kernel) Modules(modalias string) []string {
	if modalias == "" {
		return nil
	}
	if found := k.aliases.lookup(modalias); len(found) > 0 {
		return found
	}
	return k.builtinAliases.lookup(modalias)
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
	raw, err := k.fsys.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", module, err)
	}
	elfData, err := decompressModule(raw)
	if err != nil {
		return nil, fmt.Errorf("module %s: %s: %w", module, file, err)
	}
	fw, err := modinfoValues(elfData, "firmware")
	if err != nil {
		return nil, fmt.Errorf("module %s: %s: %w", module, file, err)
	}
	k.firmware[module] = fw
	return fw, nil
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
// "kernel/drivers/net/foo.ko.xz: dep1.ko dep2.ko".
func parseModulesDep(data []byte) map[string]string {
	paths := make(map[string]string)
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		file := string(line[:colon])
		paths[moduleNameFromPath(file)] = file
	}
	return paths
}

// moduleNameFromPath turns ".../rtw88_8821au.ko.zst" into "rtw88_8821au".
func moduleNameFromPath(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i > 0 {
		base = base[:i]
	}
	return normalizeName(base)
}
