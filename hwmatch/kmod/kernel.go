// Package kmod reads a kernel's module metadata the way kmod does: which modules serve a
// modalias (modules.alias.bin, modules.builtin.modinfo) and which firmware files each module
// declares (the .modinfo section of the module file, found through modules.dep.bin;
// modules.builtin.modinfo for built-in modules). depmod's binary indexes are memory-mapped, so
// a lookup reads only the pages of the trie nodes it walks; where they are missing or malformed
// the text files modules.alias and modules.dep answer instead, alike.
package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync"

	vfs "github.com/twpayne/go-vfs/v4"
)

// Kernel is one kernel release's module metadata under a root. It may hold memory-mapped
// indexes: Close releases them once the Kernel is no longer needed. A Kernel is not safe for
// concurrent use.
type Kernel struct {
	Release string
	// Dir is the modules directory as seen under the root, e.g. /lib/modules/6.1.0-56-amd64.
	Dir string
	// Warnings lists metadata that was missing or malformed; lookups still answer from the rest.
	Warnings []string

	fsys   vfs.FS
	closed bool

	aliasIndex     *index // modules.alias.bin; nil when missing or unusable
	aliasFile      []byte // modules.alias, read on first use when aliasIndex is nil
	aliasFileRead  bool
	aliasMissing   bool // modules.alias is missing too, and a warning says so
	badAliasLines  int
	builtinAliases *aliasIndex
	builtin        *builtinModinfo

	depIndex      *index // modules.dep.bin, opened on first use; nil when missing or unusable
	depIndexTried bool
	paths         map[string]string // module name -> file path under Dir (from modules.dep)
	firmware      map[string][]string
}

// ModuleDirs are the places a kernel's modules live, in the order kmod searches them on a
// merged-/usr system.
var ModuleDirs = []string{"/lib/modules", "/usr/lib/modules"}

// Open reads the metadata of kernel release under fsys. A missing modules directory is an error
// wrapping fs.ErrNotExist; missing or malformed files inside it become Warnings. The binary
// indexes are memory-mapped where fsys shows the real file system (vfs.OSFS, a vfs.PathFS over
// it) and read into memory otherwise. The caller should Close the Kernel when done with it (a
// Kernel dropped unclosed has its mappings released by the garbage collector, later).
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

	k.aliasIndex = k.openIndex("modules.alias.bin", "modules.alias")
	if k.aliasIndex == nil {
		// modules.alias is read on first use; a missing one is reported now, as always.
		if _, err := fsys.Stat(path.Join(k.Dir, "modules.alias")); errors.Is(err, fs.ErrNotExist) {
			k.aliasMissing = true
			k.warnMissing(path.Join(k.Dir, "modules.alias"))
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
			k.warnMissing(p)
		} else {
			k.warn("%s: %v", p, err)
		}
	}
	return data, err
}

func (k *Kernel) warnMissing(p string) {
	k.warn("%s is missing (run depmod %s): lookups that need it find nothing", p, k.Release)
}

// openIndex opens the binary index name, nil when it is missing (silently: initramfs tools and
// test trees often ship only the text files) or unusable (with a warning naming the text file
// used instead).
func (k *Kernel) openIndex(name, text string) *index {
	if k.closed {
		return nil
	}
	p := path.Join(k.Dir, name)
	x, err := openIndex(k.fsys, p)
	if err != nil {
		if !errors.Is(err, errNoIndex) {
			k.indexWarning(p, text, err)
		}
		return nil
	}
	return x
}

func (k *Kernel) indexWarning(p, text string, err error) {
	k.warn("%s: %v; reading %s instead", p, err, text)
}

// dropIndex closes an index found malformed during a lookup, warning that the text file text
// answers from now on.
func (k *Kernel) dropIndex(x **index, name, text string, err error) {
	k.indexWarning(path.Join(k.Dir, name), text, err)
	if cerr := (*x).close(); cerr != nil {
		k.warn("%s: %v", path.Join(k.Dir, name), cerr)
	}
	*x = nil
}

// Close releases the memory-mapped indexes. Nothing the Kernel returned refers to them, so
// answers stay valid; but the Kernel must not be used for lookups afterwards (they would
// re-read the text files). A second Close does nothing.
func (k *Kernel) Close() error {
	k.closed = true
	k.depIndexTried = true // do not reopen it
	var errs []error
	for _, x := range []**index{&k.aliasIndex, &k.depIndex} {
		if *x != nil {
			if err := (*x).close(); err != nil {
				errs = append(errs, err)
			}
			*x = nil
		}
	}
	return errors.Join(errs...)
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
	if k.aliasIndex != nil {
		var err error
		if found, specific, err = resolveFromIndex(k.aliasIndex, modaliases); err != nil {
			k.dropIndex(&k.aliasIndex, "modules.alias.bin", "modules.alias", err)
			found, specific = nil, nil
		}
	}
	if found == nil {
		if !k.aliasFileRead {
			k.aliasFileRead = true
			if k.aliasMissing {
				k.aliasFile, _ = k.fsys.ReadFile(path.Join(k.Dir, "modules.alias"))
			} else {
				k.aliasFile, _ = k.readMeta("modules.alias")
			}
		}
		var bad int
		found, specific, bad = resolveFromAliasFile(k.aliasFile, modaliases)
		if bad > 0 && k.badAliasLines == 0 {
			k.warn("%s/modules.alias: %d malformed lines skipped", k.Dir, bad)
		}
		k.badAliasLines = bad
	}
	for _, m := range modaliases {
		if m == "" || len(found[m]) > 0 {
			continue
		}
		key, ok := normalizeAlias(m)
		if !ok {
			continue
		}
		if mods, spec := k.builtinAliases.lookup(key); len(mods) > 0 {
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

// Prefetch reads the declared firmware of modules side by side, one module file per CPU, so
// that Firmware answers them from memory: reading a module's .modinfo (a whole decompression
// for a .ko.xz or .ko.zst) is most of what detect does once the devices are known. The module
// files are found first, one after the other (the modules.dep index is not safe for concurrent
// use). A module that cannot be read is left for Firmware to report.
func (k *Kernel) Prefetch(modules []string) {
	type job struct {
		module, file string
		fw           []string
		ok           bool
	}
	var jobs []*job
	seen := map[string]bool{}
	for _, m := range modules {
		m = normalizeName(m)
		if _, done := k.firmware[m]; done || seen[m] || k.builtin.modules[m] {
			continue
		}
		seen[m] = true
		if file, err := k.modulePath(m); err == nil {
			jobs = append(jobs, &job{module: m, file: file})
		}
	}
	next := make(chan *job)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				fw, err := k.readModuleFirmware(j.file)
				j.fw, j.ok = fw, err == nil
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for _, j := range jobs {
		if j.ok {
			k.firmware[j.module] = j.fw
		}
	}
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

// modulePath finds a module's file (module is a normalized name) through modules.dep.bin,
// opened on first use, as libkmod does (kmod_search_moddep); without a usable one, through
// modules.dep, read whole on first use: most runs only need the few modules that match the
// machine's devices.
func (k *Kernel) modulePath(module string) (string, error) {
	if !k.depIndexTried {
		k.depIndexTried = true
		k.depIndex = k.openIndex("modules.dep.bin", "modules.dep")
	}
	var rel string
	if k.depIndex != nil {
		// The value is "kernel/.../foo.ko.xz: dep.ko ...".
		line, ok, err := k.depIndex.lookup(module)
		if err == nil {
			if !ok {
				return "", fmt.Errorf("module %s: not in %s/modules.dep: %w", module, k.Dir, fs.ErrNotExist)
			}
			rel, _, _ = strings.Cut(line, ":")
			if rel == "" {
				return "", fmt.Errorf("module %s: %s/modules.dep.bin gives no file", module, k.Dir)
			}
		} else {
			k.dropIndex(&k.depIndex, "modules.dep.bin", "modules.dep", err)
		}
	}
	if rel == "" {
		if k.paths == nil {
			k.paths = make(map[string]string)
			if data, err := k.readMeta("modules.dep"); err == nil {
				k.paths = parseModulesDep(data)
			}
		}
		var ok bool
		if rel, ok = k.paths[module]; !ok {
			return "", fmt.Errorf("module %s: not in %s/modules.dep: %w", module, k.Dir, fs.ErrNotExist)
		}
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
