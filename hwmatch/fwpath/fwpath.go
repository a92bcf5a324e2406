// Package fwpath answers where the kernel would find a firmware file, following its search path.
package fwpath

import (
	"path"
	"strings"
	"sync"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// ParameterPath is where the firmware_class.path module parameter can be read and written.
const ParameterPath = "/sys/module/firmware_class/parameters/path"

// Suffixes are the variants the kernel tries, in order: the plain name in every directory, then
// the ".zst" name in every directory, then ".xz" (drivers/base/firmware_loader/main.c,
// _request_firmware calling fw_get_filesystem_firmware with "", ".zst", ".xz"). A kernel tries a
// compressed variant only when built with CONFIG_FW_LOADER_COMPRESS_ZSTD / _XZ: Debian's 6.1
// has XZ and not ZSTD, so a .zst-only firmware file is invisible to it (see Search.Supports).
var Suffixes = []string{"", ".zst", ".xz"}

// Search is a kernel's firmware search path under a root.
type Search struct {
	root *hostfs.Root
	// Dirs are the directories in the kernel's order: firmware_class.path when set, then
	// /lib/firmware/updates/<release>, /lib/firmware/updates, /lib/firmware/<release>,
	// /lib/firmware (fw_path[] in drivers/base/firmware_loader/main.c).
	Dirs []string
	// Compression says which compressed variants the kernel reads ("zst", "xz"), from the
	// kernel config when the root has it; nil means unknown, and every variant counts.
	Compression map[string]bool

	mu sync.Mutex
	// dirs caches whether a directory exists: a firmware name's directory is looked up once
	// per search directory rather than once per name and suffix (most of a machine's
	// declared firmware is missing, BenchmarkApplyHost).
	dirs map[string]bool
}

// New returns the search path the kernel release would use under root.
func New(root *hostfs.Root, release string) *Search {
	s := &Search{root: root}
	if data, err := root.FS.ReadFile(ParameterPath); err == nil {
		if custom := strings.TrimSpace(string(data)); custom != "" {
			s.Dirs = append(s.Dirs, custom)
		}
	}
	s.Dirs = append(s.Dirs,
		"/lib/firmware/updates/"+release,
		"/lib/firmware/updates",
		"/lib/firmware/"+release,
		"/lib/firmware",
	)
	s.Compression = kernelCompression(root, release)
	return s
}

// kernelCompression reads CONFIG_FW_LOADER_COMPRESS_{ZSTD,XZ} from /boot/config-<release> or
// the modules directory's copy; nil when neither exists.
func kernelCompression(root *hostfs.Root, release string) map[string]bool {
	for _, p := range []string{"/boot/config-" + release, "/lib/modules/" + release + "/config", "/usr/lib/modules/" + release + "/config"} {
		data, err := root.FS.ReadFile(p)
		if err != nil {
			continue
		}
		text := string(data)
		return map[string]bool{
			"zst": strings.Contains(text, "\nCONFIG_FW_LOADER_COMPRESS_ZSTD=y"),
			"xz":  strings.Contains(text, "\nCONFIG_FW_LOADER_COMPRESS_XZ=y"),
		}
	}
	return nil
}

// Supports reports whether the kernel reads firmware stored with suffix ("", ".zst", ".xz").
func (s *Search) Supports(suffix string) bool {
	if suffix == "" || s.Compression == nil {
		return true
	}
	return s.Compression[strings.TrimPrefix(suffix, ".")]
}

// Find returns where the kernel would load firmware name from, as a path under the root, or
// "" when it would fail with -ENOENT. Names with ".." components never resolve.
func (s *Search) Find(name string) string {
	if name == "" || strings.HasPrefix(name, "/") || containsDotDot(name) {
		return ""
	}
	for _, suffix := range Suffixes {
		if !s.Supports(suffix) {
			continue
		}
		for _, dir := range s.Dirs {
			p := path.Join(dir, name+suffix)
			if !s.isDir(path.Dir(p)) {
				continue
			}
			if info, err := s.root.FS.Stat(p); err == nil && info.Mode().IsRegular() {
				return p
			}
		}
	}
	return ""
}

// isDir says whether dir exists and is a directory (symlinks followed, as the kernel's
// lookup follows them), caching the answer.
func (s *Search) isDir(dir string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok, seen := s.dirs[dir]
	if !seen {
		info, err := s.root.FS.Stat(dir)
		ok = err == nil && info.IsDir()
		if s.dirs == nil {
			s.dirs = map[string]bool{}
		}
		s.dirs[dir] = ok
	}
	return ok
}

func containsDotDot(name string) bool {
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}
