package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// MaxSymlinks is the kernel's limit on links followed in one lookup (MAXSYMLINKS, 40).
const MaxSymlinks = 40

// ErrSymlinkLoop is returned when resolving takes more than MaxSymlinks links.
var ErrSymlinkLoop = errors.New("too many levels of symbolic links")

// Chain is where a path leads under a root.
type Chain struct {
	// Links are the symlinks followed on the way, in order (directory links included).
	Links []string
	// Final is the path it ends at; "" when resolving failed.
	Final string
	// Missing is, when resolving failed, the path that does not exist or cannot be read (for a
	// loop, the link that closes it).
	Missing string
}

// ResolveChain follows every symlink of p the way the kernel would inside a chroot to Dir: an
// absolute target starts again at the root and ".." stops there, 40 links at most. Kairos'
// enable links are absolute (/var/lib/kairos/extensions/x.raw) and must resolve inside --root
// or a sysroot, never on the host. The final component must exist. On an error the chain holds
// the links followed so far and where it broke.
func (r *Root) ResolveChain(p string) (Chain, error) {
	var c Chain
	if !path.IsAbs(p) {
		return c, fmt.Errorf("resolve %q: not an absolute path", p)
	}
	resolved := "/"
	pending := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
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
			c.Missing = next
			return c, fmt.Errorf("resolve %s: %s: %w", p, next, unwrapPath(err))
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if len(c.Links) == MaxSymlinks {
			c.Missing = next
			return c, fmt.Errorf("resolve %s: %w", p, ErrSymlinkLoop)
		}
		target, err := r.FS.Readlink(next)
		if err != nil {
			c.Missing = next
			return c, fmt.Errorf("resolve %s: %s: %w", p, next, unwrapPath(err))
		}
		c.Links = append(c.Links, next)
		if path.IsAbs(target) {
			resolved = "/"
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	c.Final = resolved
	return c, nil
}

// Resolve returns the absolute path p leads to under the root (see ResolveChain).
func (r *Root) Resolve(p string) (string, error) {
	c, err := r.ResolveChain(p)
	return c.Final, err
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
