package prune

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// firmwareLocations are where firmware lives under the root: /lib/firmware is where the kernel
// looks (on a merged-/usr system a link into /usr/lib), /usr/lib/firmware where packages put it.
var firmwareLocations = []string{"/lib/firmware", "/usr/lib/firmware"}

// findFirmwareDir returns the firmware directory under the root, symlinks resolved inside it.
func findFirmwareDir(root *hostfs.Root) (string, error) {
	var found []string
	for _, p := range firmwareLocations {
		resolved, err := root.Resolve(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		info, err := root.FS.Stat(resolved)
		if err != nil {
			return "", fmt.Errorf("firmware directory %s: %w", root.Real(resolved), err)
		}
		if !info.IsDir() {
			return "", fmt.Errorf("firmware directory %s (from %s): not a directory", root.Real(resolved), p)
		}
		if resolved == "/" {
			return "", fmt.Errorf("%s resolves to the root %s itself: refusing to prune it", root.Real(p), root.Dir)
		}
		if len(found) == 0 || found[0] != resolved {
			found = append(found, resolved)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no firmware directory under %s: neither %s exists", root.Dir, strings.Join(firmwareLocations, " nor "))
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("%s and %s are two different firmware directories: merge them (the kernel reads only /lib/firmware) before pruning",
			root.Real(found[0]), root.Real(found[1]))
	}
}

type kind int

const (
	regular kind = iota // a file (or anything else that is neither a link nor a directory)
	symlink
	directory
)

type entry struct {
	kind kind
	size int64 // bytes of a regular file; 0 for links and directories
}

// tree is the firmware directory's contents, read without following symlinks, so nothing
// outside it is ever listed.
type tree struct {
	dir      string              // the firmware directory under the root
	entries  map[string]entry    // by path relative to dir
	children map[string][]string // directory ("" is dir itself) -> its entries' relative paths
	all      []string            // every entry, sorted; see sorted
}

func walk(fsys vfs.FS, dir string) (*tree, error) {
	t := &tree{dir: dir, entries: map[string]entry{}, children: map[string][]string{}}
	return t, t.read(fsys, "")
}

func (t *tree) read(fsys vfs.FS, rel string) error {
	abs := t.abs(rel)
	list, err := fsys.ReadDir(abs)
	if err != nil {
		return fmt.Errorf("reading %s: %w", abs, err)
	}
	for _, d := range list {
		child := path.Join(rel, d.Name())
		e := entry{kind: regular}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.kind = symlink
		case d.IsDir():
			e.kind = directory
		default:
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("reading %s: %w", t.abs(child), err)
			}
			e.size = info.Size()
		}
		t.entries[child] = e
		t.children[rel] = append(t.children[rel], child)
		if e.kind == directory {
			if err := t.read(fsys, child); err != nil {
				return err
			}
		}
	}
	return nil
}

// abs is rel's path under the root.
func (t *tree) abs(rel string) string {
	return path.Join(t.dir, rel)
}

// rel is the path relative to the firmware directory of p, a path under the root; ok is false
// when p lies outside it. The directory itself is "".
func (t *tree) rel(p string) (string, bool) {
	if p == t.dir {
		return "", true
	}
	rel, ok := strings.CutPrefix(p, t.dir+"/")
	return rel, ok
}

// sorted lists every entry, directories included, parents before their contents.
func (t *tree) sorted() []string {
	if t.all == nil {
		t.all = make([]string, 0, len(t.entries))
		for rel := range t.entries {
			t.all = append(t.all, rel)
		}
		sort.Strings(t.all)
	}
	return t.all
}
