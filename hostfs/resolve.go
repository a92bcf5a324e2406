package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// maxSymlinks is the kernel's limit on links followed in one lookup (MAXSYMLINKS, 40).
const maxSymlinks = 40

// ErrSymlinkLoop is returned when resolving takes more than 40 links.
var ErrSymlinkLoop = errors.New("too many levels of symbolic links")

// Resolve returns the absolute path p leads to under the root, following every symlink the way
// the kernel would inside a chroot to Dir: an absolute target starts again at the root and ".."
// stops there. Kairos' enable links are absolute (/var/lib/kairos/extensions/x.raw) and must
// resolve inside --root or a sysroot, never on the host. The final component must exist.
func (r *Root) Resolve(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("resolve %q: not an absolute path", p)
	}
	resolved := "/"
	pending := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	links := 0
	for len(pending) > 0 {
		part := pending[0]
		pending = pending[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, part)
		info, err := r.FS.Lstat(next)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %s: %w", p, next, unwrapPath(err))
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("resolve %s: %w", p, ErrSymlinkLoop)
		}
		target, err := r.FS.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %s: %w", p, next, unwrapPath(err))
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return resolved, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
