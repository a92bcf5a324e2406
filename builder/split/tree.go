package split

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

type kind int

const (
	regular kind = iota
	symlink
	directory
)

// entry is one thing in the firmware tree, read without following links.
type entry struct {
	kind   kind
	size   int64  // bytes of a regular file
	target string // a symlink's target as written
}

// tree is the firmware directory's contents, by path relative to it ("" is the directory).
type tree struct {
	dir      string
	entries  map[string]*entry
	children map[string][]string // directory -> its entries, sorted
	sorted   []string            // every entry, sorted: parents before their contents
}

// installPrefixes are where an absolute link inside the tree may point back into it: the
// tree is installed as /usr/lib/firmware, which /lib/firmware reaches on merged-/usr systems.
var installPrefixes = []string{"/usr/lib/firmware", "/lib/firmware"}

var (
	errOutside = errors.New("leads outside the firmware directory")
	errMissing = errors.New("target missing")
	errLoop    = errors.New("too many levels of symbolic links")
	errNotDir  = errors.New("a path component is not a directory")
)

// readTree reads dir. updates/ (Kairos links /usr/lib/firmware/updates to /usr/local), special
// files and names a manifest cannot carry are left out with a warning.
func readTree(dir string) (*tree, []string, error) {
	t := &tree{dir: dir, entries: map[string]*entry{"": {kind: directory}}, children: map[string][]string{}}
	var warnings []string
	var read func(rel string) error
	read = func(rel string) error {
		list, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		for _, d := range list {
			child := path.Join(rel, d.Name())
			switch {
			case child == "updates":
				warnings = append(warnings, "updates/ left out: Kairos makes /usr/lib/firmware/updates a link to /usr/local/lib/firmware, and an image must not hide it")
				continue
			case strings.ContainsAny(d.Name(), "\\\x00"):
				warnings = append(warnings, fmt.Sprintf("%q left out: a firmware name cannot contain '\\'", child))
				continue
			}
			e := &entry{}
			switch typ := d.Type(); {
			case typ&fs.ModeSymlink != 0:
				e.kind = symlink
				if e.target, err = os.Readlink(filepath.Join(dir, child)); err != nil {
					return err
				}
			case typ.IsDir():
				e.kind = directory
			case typ.IsRegular():
				info, err := d.Info()
				if err != nil {
					return err
				}
				e.size = info.Size()
			default:
				warnings = append(warnings, fmt.Sprintf("%s left out: a %s, not a file", child, typ))
				continue
			}
			t.entries[child] = e
			t.children[rel] = append(t.children[rel], child)
			if e.kind == directory {
				if err := read(child); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := read(""); err != nil {
		return nil, nil, fmt.Errorf("reading the firmware directory: %w", err)
	}
	for rel := range t.entries {
		if rel != "" {
			t.sorted = append(t.sorted, rel)
		}
	}
	sort.Strings(t.sorted)
	return t, warnings, nil
}

// chain is where a path of the tree leads: the links followed (directory links included) and
// the entry it ends at.
type chain struct {
	links []string
	final string
}

// resolve follows rel's links inside the tree as the kernel would once the tree is
// /usr/lib/firmware: a relative target from the link's directory, an absolute one under
// /usr/lib/firmware or /lib/firmware from the tree's top; anything else, and ".." above the
// top, leads outside. 40 links at most (hostfs.MaxSymlinks).
func (t *tree) resolve(rel string) (chain, error) {
	var c chain
	resolved := ""
	pending := strings.Split(rel, "/")
	for len(pending) > 0 {
		part := pending[0]
		pending = pending[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if resolved == "" {
				return c, errOutside
			}
			resolved = parent(resolved)
			continue
		}
		if e := t.entries[resolved]; e == nil || e.kind != directory {
			return c, errNotDir
		}
		next := path.Join(resolved, part)
		e := t.entries[next]
		switch {
		case e == nil:
			return c, fmt.Errorf("%s: %w", next, errMissing)
		case e.kind != symlink:
			resolved = next
			continue
		case len(c.links) == hostfs.MaxSymlinks:
			return c, errLoop
		}
		c.links = append(c.links, next)
		target, err := inTree(e.target)
		if err != nil {
			return c, err
		}
		if path.IsAbs(e.target) {
			resolved = ""
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	c.final = resolved
	return c, nil
}

// inTree turns an absolute link target into one relative to the tree's top; a relative target
// is returned as it is.
func inTree(target string) (string, error) {
	if !path.IsAbs(target) {
		return target, nil
	}
	clean := path.Clean(target)
	for _, prefix := range installPrefixes {
		if clean == prefix {
			return ".", nil
		}
		if rest, ok := strings.CutPrefix(clean, prefix+"/"); ok {
			return rest, nil
		}
	}
	return "", errOutside
}

// parent is rel's directory, "" at the top.
func parent(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}

// under reports whether rel lies inside directory dir ("" is the top).
func under(rel, dir string) bool {
	return dir == "" || strings.HasPrefix(rel, dir+"/")
}

// imageTarget is the target a link gets in an image: a relative target as written (resolve
// already refused those that climb out), an absolute one rewritten relative to the link's
// directory, so it resolves inside the image and inside a mount of it alone
// (firmware_class.path) alike.
func imageTarget(link, target string) (string, error) {
	if !path.IsAbs(target) {
		return target, nil
	}
	rest, err := inTree(target)
	if err != nil {
		return "", err
	}
	return strings.Repeat("../", strings.Count(link, "/")) + rest, nil
}
