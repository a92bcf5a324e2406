package install

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/kairos-io/kairos-firmware/stages/plan"
)

// store is the Kairos extension store under a root, on the real file system.
type store struct {
	dir     string   // real path of plan.StoreRoot
	created []string // directories this install created, parents first
}

func openStore(root string) (*store, error) {
	if root == "" {
		root = "/"
	}
	s := &store{dir: filepath.Join(root, plan.StoreRoot)}
	if err := s.mkdir(s.dir); err != nil {
		s.abandon()
		return nil, err
	}
	return s, nil
}

// mkdir creates dir and its missing parents and remembers the ones it created.
func (s *store) mkdir(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return err
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		s.created = append(s.created, missing[i])
	}
	return nil
}

// abandon removes the directories this install created while they are empty, so that a
// failed install leaves no trace.
func (s *store) abandon() {
	for i := len(s.created) - 1; i >= 0; i-- {
		os.Remove(s.created[i])
	}
	s.created = nil
}

// temp creates the file an image is fetched into: hidden and not ending in .raw, so that
// neither kairos-agent nor immucore takes it for an image.
func (s *store) temp() (*sink, error) {
	f, err := os.CreateTemp(s.dir, ".kairos-firmware-*.tmp")
	if err != nil {
		return nil, err
	}
	return newSink(f), nil
}

// commit renames the verified temporary file to name. An image of that name with the same
// content stays as it is (true); one with other content is replaced in one rename.
func (s *store) commit(tmp *sink, name string) (bool, error) {
	final := filepath.Join(s.dir, name)
	fi, err := os.Lstat(final)
	switch {
	case err == nil && fi.IsDir():
		return false, fmt.Errorf("%s is a directory", final)
	case err == nil && fi.Mode().IsRegular() && fi.Size() == tmp.n:
		sum, err := fileSum(final)
		if err != nil {
			return false, err
		}
		if sum == tmp.sum() {
			return true, nil
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	if err := os.Chmod(tmp.f.Name(), 0o644); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.f.Name(), final); err != nil {
		return false, err
	}
	tmp.kept = true
	return false, syncDir(s.dir)
}

// enable points DIR/<profile>/<name> at the image's absolute path as the installed system
// sees it, as `kairos-agent sysext enable` does. A link already right stays (true); anything
// else of that name is replaced by a temporary link renamed over it.
func (s *store) enable(name, profile string) (bool, error) {
	dir := filepath.Join(s.dir, profile)
	if err := s.mkdir(dir); err != nil {
		return false, err
	}
	link := filepath.Join(dir, name)
	target := path.Join(plan.StoreRoot, name)
	fi, err := os.Lstat(link)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		if t, err := os.Readlink(link); err == nil && t == target {
			return true, nil
		}
	case err == nil && fi.IsDir():
		return false, fmt.Errorf("%s is a directory", link)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".kairos-firmware-%d-%d.link", os.Getpid(), time.Now().UnixNano()))
	if err := os.Symlink(target, tmp); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return false, syncDir(dir)
}

func fileSum(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
