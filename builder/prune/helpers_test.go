package prune

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// newRoot makes a root tree from a vfst description.
func newRoot(t *testing.T, tree map[string]any) *hostfs.Root {
	t.Helper()
	fsys, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return hostfs.FromFS(fsys.TempDir(), fsys)
}

// makeLink makes a link whose target is kept as written (vfst rewrites absolute targets into its
// temporary directory; images hold them as the distribution wrote them).
func makeLink(t *testing.T, root *hostfs.Root, link, target string) {
	t.Helper()
	if err := os.Symlink(target, root.Real(link)); err != nil {
		t.Fatal(err)
	}
}

// listTree lists everything under dir on disk: "name/" for a directory, "name -> target" for a
// link, "name" for a file.
func listTree(t *testing.T, root *hostfs.Root, dir string) []string {
	t.Helper()
	base := root.Real(dir)
	var list []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == base {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			rel += " -> " + target
		case d.IsDir():
			rel += "/"
		}
		list = append(list, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(list)
	return list
}

func removedPaths(res *Result) []string {
	paths := []string{}
	for _, f := range res.Removed {
		paths = append(paths, f.Path)
	}
	return paths
}

func assertEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}
