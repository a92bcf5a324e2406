package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// maxSymlinks bounds symlink hops like the kernel's MAXSYMLINKS (40).
const maxSymlinks = 40

var (
	// ErrLeavesImage: a relative symlink climbs above the image root with "..".
	ErrLeavesImage = errors.New("symlink leaves the image")
	// ErrSymlinkLoop: more than 40 symlinks on one path.
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	errNotDir      = errors.New("not a directory")
)

// chase resolves name (an io/fs path) in low to a path without symlinks. follow decides
// whether a final symlink is followed. An absolute target restarts at the image root. With
// strict, ".." above the root is ErrLeavesImage; without it, it stays at the root (systemd's
// CHASE_AT_RESOLVE_IN_ROOT, the way the image sees itself).
func chase(low fs.ReadLinkFS, name string, follow, strict bool) (string, error) {
	todo := strings.Split(name, "/")
	cur := "."
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur == "." {
				if strict {
					return "", ErrLeavesImage
				}
				continue
			}
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := low.Lstat(next)
		if err != nil {
			return "", unwrapPathError(err)
		}
		final := allDots(todo)
		if fi.Mode()&fs.ModeSymlink == 0 || (final && !follow) {
			if !final && !fi.IsDir() {
				return "", fmt.Errorf("%s: %w", next, errNotDir)
			}
			cur = next
			continue
		}
		if hops++; hops > maxSymlinks {
			return "", ErrSymlinkLoop
		}
		target, err := low.ReadLink(next)
		if err != nil {
			return "", unwrapPathError(err)
		}
		if target == "" {
			return "", fmt.Errorf("%s: empty symlink", next)
		}
		if strings.HasPrefix(target, "/") {
			cur = "."
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

func allDots(todo []string) bool {
	for _, c := range todo {
		if c != "" && c != "." {
			return false
		}
	}
	return true
}

// unwrapPathError drops the inner path (it names an internal, partly resolved path).
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
