package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Rejected is a store entry that is not a usable image.
type Rejected struct {
	Name   string // image name, or the entry's file name when no name could be derived
	Path   string
	Target string // what Path resolves to when it is a symlink
	Reason string
}

// ScanStore reads every image in dir: directories and *.raw files, symlinks followed (Kairos'
// enable links point into the flat store). Entries starting with "." are skipped, as hidden
// files. Images are returned ordered by name; when two entries share a name, the first in
// file name order wins and the other is rejected naming both paths (systemd-sysext would also
// merge only one of them). A dir that cannot be listed is one Rejected entry.
func ScanStore(dir string) ([]*Image, []Rejected) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []Rejected{{Name: filepath.Base(dir), Path: dir, Reason: fmt.Sprintf("listing the store: %v", err)}}
	}
	var images []*Image
	var rejected []Rejected
	byName := map[string]*Image{}
	for _, e := range ents { // os.ReadDir sorts by file name
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		target, _ := filepath.EvalSymlinks(p)
		if target == p {
			target = ""
		}
		img, err := Read(p)
		if err != nil {
			name := e.Name()
			if st, serr := os.Stat(p); serr == nil {
				if n, nerr := ImageName(p, st.IsDir()); nerr == nil {
					name = n
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
