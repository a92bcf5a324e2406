package install

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// snapshot describes every entry under dir: files by content hash, links by target. Two equal
// snapshots mean nothing under dir was created, removed or rewritten.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fi.IsDir():
			out[rel] = "dir"
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + sum(data) + " " + fi.ModTime().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertUntouched(t *testing.T, before map[string]string, dir string) {
	t.Helper()
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("the tree changed:\nbefore %v\nafter  %v", before, after)
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// seededRoot is a root whose store already holds an enabled image, so that a failed install
// has something to leave alone.
func seededRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	store := filepath.Join(root, "var/lib/kairos/extensions")
	must(t, os.MkdirAll(filepath.Join(store, "common"), 0o755))
	must(t, os.WriteFile(filepath.Join(store, "old.sysext.raw"), []byte("old image"), 0o644))
	must(t, os.Symlink("/var/lib/kairos/extensions/old.sysext.raw", filepath.Join(store, "common/old.sysext.raw")))
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, content, 0o600))
	return p
}
