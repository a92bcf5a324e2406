package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// Rejected is a store entry that is not a usable image.
type Rejected struct {
	Name   string // image name, or the entry's file name when no name could be derived
	Path   string
	Target string // what Path resolves to when it is a symlink
	Reason string
}

// ScanStore reads every image in dir, an absolute path under root: directories and *.raw files,
// symlinks followed inside the root (Kairos' enable links point into the flat store). Entries
// starting with "." are skipped, as hidden files, and so are the names in skip (the flat store's
// active/, passive/... directories are not images). Images are returned ordered by name; when
// two entries share a name, the first in file name order wins and the other is rejected naming
// both paths (systemd-sysext would also merge only one of them). A missing dir holds no images;
// one that cannot be listed is one Rejected entry. Paths are as the system under root sees them.
func ScanStore(root *hostfs.Root, dir string, skip ...string) ([]*Image, []Rejected) {
	ents, err := root.FS.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []Rejected{{Name: path.Base(dir), Path: dir, Reason: fmt.Sprintf("listing the store: %v", unwrapPathError(err))}}
	}
	var names []string
	for _, e := range ents { // ReadDir sorts by file name
		if !strings.HasPrefix(e.Name(), ".") && !slices.Contains(skip, e.Name()) {
			names = append(names, e.Name())
		}
	}
	read := readEntries(root, dir, names)
	var images []*Image
	var rejected []Rejected
	byName := map[string]*Image{}
	for i, name := range names {
		p := path.Join(dir, name)
		img, err := read[i].img, read[i].err
		if err != nil {
			name, target := name, ""
			if t, rerr := root.Resolve(p); rerr == nil {
				if t != p {
					target = t
				}
				if st, serr := os.Stat(root.Real(t)); serr == nil {
					if n, nerr := ImageName(p, st.IsDir()); nerr == nil {
						name = n
					}
				}
			}
			rejected = append(rejected, Rejected{Name: name, Path: p, Target: target, Reason: err.Error()})
			continue
		}
		if first, dup := byName[img.Name]; dup {
			rejected = append(rejected, Rejected{Name: img.Name, Path: p, Target: img.Target,
				Reason: fmt.Sprintf("image name %q is already taken by %s; %s is ignored", img.Name, first.Path, p)})
			continue
		}
		byName[img.Name] = img
		images = append(images, img)
	}
	sort.Slice(images, func(i, j int) bool { return images[i].Name < images[j].Name })
	sort.SliceStable(rejected, func(i, j int) bool {
		if rejected[i].Name != rejected[j].Name {
			return rejected[i].Name < rejected[j].Name
		}
		return rejected[i].Path < rejected[j].Path
	})
	return images, rejected
}

type readResult struct {
	img *Image
	err error
}

// readEntries reads the store entries names of dir on every core: reading an image is
// decompression and hashing as much as I/O, and it is on the boot path. Results keep the order
// of names, so what follows is as deterministic as a sequential read.
func readEntries(root *hostfs.Root, dir string, names []string) []readResult {
	out := make([]readResult, len(names))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.NumCPU(), len(names)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i].img, out[i].err = ReadEntry(root, path.Join(dir, names[i]))
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}
