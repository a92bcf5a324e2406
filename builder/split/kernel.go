package split

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hwmatch/kmod"
)

// module is one kernel module: its name as the kernel writes it ('_', never '-'), the modalias
// patterns it declares and the firmware names it may request.
type module struct {
	name     string
	aliases  []string
	firmware []string
}

// ModulesDir presents a kernel modules directory (a build stage's /lib/modules/6.1.0-56-amd64)
// the way kmod.Open reads kernels, at /lib/modules/<release>, release being the directory's
// name: a temporary root holding that one link. cleanup removes it.
func ModulesDir(dir string) (fsys vfs.FS, release string, cleanup func(), err error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		var info os.FileInfo
		if info, err = os.Stat(abs); err == nil && !info.IsDir() {
			err = errors.New("not a directory")
		}
	}
	if err != nil {
		return nil, "", nil, fmt.Errorf("--modules %q: %w", dir, err)
	}
	root, err := os.MkdirTemp("", "kairos-firmware-modules-")
	if err != nil {
		return nil, "", nil, err
	}
	cleanup = func() { os.RemoveAll(root) }
	release = filepath.Base(abs)
	link := filepath.Join(root, kmod.ModuleDirs[0], release)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		cleanup()
		return nil, "", nil, err
	}
	if err := os.Symlink(abs, link); err != nil {
		cleanup()
		return nil, "", nil, err
	}
	return vfs.NewPathFS(vfs.OSFS, root), release, cleanup, nil
}

// kernelModules opens the kernel of opts and lists its modules, with kmod's warnings.
func kernelModules(opts Options) ([]*module, []string, error) {
	k, err := kmod.Open(opts.KernelFS, opts.KernelRelease)
	if err != nil {
		return nil, nil, Problems{err.Error()}
	}
	defer k.Close()
	modules, warnings, err := readModules(opts.KernelFS, k)
	if err != nil {
		return nil, nil, Problems{err.Error()}
	}
	return modules, append(k.Warnings, warnings...), nil
}

// readModules lists every module of the kernel, sorted by name: loadable ones from modules.dep,
// built-in ones from modules.builtin.modinfo, with their alias patterns (modules.alias and the
// built-in alias= records) and declared firmware (kmod). A module whose file cannot be read is
// a warning.
func readModules(fsys vfs.FS, k *kmod.Kernel) ([]*module, []string, error) {
	byName := map[string]*module{}
	get := func(name string) *module {
		name = strings.ReplaceAll(name, "-", "_")
		if byName[name] == nil {
			byName[name] = &module{name: name}
		}
		return byName[name]
	}
	read := func(name string) []byte {
		data, _ := fsys.ReadFile(path.Join(k.Dir, name)) // kmod.Open warned about missing ones
		return data
	}
	for _, line := range strings.Split(string(read("modules.dep")), "\n") {
		if file, _, ok := strings.Cut(line, ":"); ok && file != "" {
			base := path.Base(file)
			if i := strings.Index(base, ".ko"); i > 0 {
				get(base[:i])
			}
		}
	}
	for _, rec := range bytes.Split(read("modules.builtin.modinfo"), []byte{0}) {
		name, kv, ok := strings.Cut(string(rec), ".")
		key, value, ok2 := strings.Cut(kv, "=")
		if !ok || !ok2 || name == "" {
			continue
		}
		m := get(name)
		if key == "alias" && value != "" {
			m.aliases = append(m.aliases, value)
		}
	}
	for _, line := range strings.Split(string(read("modules.alias")), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" {
			if m := byName[strings.ReplaceAll(f[2], "-", "_")]; m != nil {
				m.aliases = append(m.aliases, f[1])
			}
		}
	}
	if len(byName) == 0 {
		return nil, nil, fmt.Errorf("kernel %s lists no modules (%s/modules.dep and modules.builtin.modinfo are missing or empty)", k.Release, k.Dir)
	}
	var warnings []string
	modules := make([]*module, 0, len(byName))
	for _, m := range byName {
		fw, err := k.Firmware(m.name)
		if err != nil {
			// the error without the host's path, which differs between runs (ModulesDir)
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			warnings = append(warnings, fmt.Sprintf("module %s left out: reading its declared firmware: %v", m.name, err))
			continue
		}
		m.firmware = fw
		m.aliases = uniqueSorted(m.aliases)
		modules = append(modules, m)
	}
	sort.Slice(modules, func(i, j int) bool { return modules[i].name < modules[j].name })
	sort.Strings(warnings)
	return modules, warnings, nil
}

// uniqueSorted sorts s and drops repeats.
func uniqueSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
