// Package hostfs resolves every system path the tool touches under one root directory, so that a
// fixture tree (a recorded machine, a test's fake sysfs, a mounted sysroot) is a whole system.
package hostfs

import (
	"fmt"
	"os"
	"path/filepath"

	vfs "github.com/twpayne/go-vfs/v4"
)

// Root is a system seen under a directory. Absolute paths given to FS resolve under Dir.
type Root struct {
	// Dir is the real, absolute directory that stands for "/". Libraries that read the real
	// filesystem themselves (ghw's chroot option) are given this.
	Dir string
	// FS reads and writes under Dir. Tests may substitute a vfst.TestFS whose TempDir is Dir.
	FS vfs.FS
}

// New returns the system rooted at dir ("/" for the running system).
func New(dir string) (*Root, error) {
	if dir == "" {
		dir = "/"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--root %q: %w", dir, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("--root %q: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("--root %q: not a directory", dir)
	}
	if abs == "/" {
		return &Root{Dir: abs, FS: vfs.OSFS}, nil
	}
	return &Root{Dir: abs, FS: vfs.NewPathFS(vfs.OSFS, abs)}, nil
}

// FromFS wraps an FS whose "/" is the real directory dir (as vfst.TestFS.TempDir()).
func FromFS(dir string, fsys vfs.FS) *Root {
	return &Root{Dir: dir, FS: fsys}
}

// Real returns the path on the real filesystem that stands for the absolute path p under the
// root, for messages and for code that must hand a path to the kernel or a library.
func (r *Root) Real(p string) string {
	if r.Dir == "/" {
		return filepath.Clean(p)
	}
	return filepath.Join(r.Dir, p)
}
