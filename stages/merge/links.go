package merge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/kairos-io/kairos-firmware/stages/plan"
)

// immucoreDirs are the enable directories whose images immucore links into /run/extensions
// itself (EnableSysExtensions in immucore's pkg/state/steps.go, the enable-sysext-confext
// step). Merge leaves those images to it: immucore checks for an existing link with os.Stat,
// which follows the link; in the initrd a link to /var/lib/kairos/... does not resolve yet, so
// a link made by Merge first looks absent to it, its os.Symlink then fails with EEXIST, and the
// step stops before linking the remaining images. On a UKI boot immucore also validates each
// image with systemd-dissect before linking it; a link of ours would bypass that.
var immucoreDirs = []string{
	path.Join(plan.StoreRoot, "active"), path.Join(plan.StoreRoot, "passive"),
	path.Join(plan.StoreRoot, "recovery"), path.Join(plan.StoreRoot, "common"),
}

// link links one image into RunExtensions the way immucore does: the link is named like the
// image file and holds the image's path inside the sysroot, not prefixed with the sysroot:
// the initrd's /run becomes the real root's /run at switch_root, where that path resolves.
// An existing link to the same target is kept; anything else there is left alone and
// reported.
func (m *merger) link(im *ImageState) LinkState {
	ls := LinkState{Image: im.Name, Link: path.Join(m.o.RunExtensions, path.Base(im.Path)), Target: im.Path}
	dir := path.Dir(im.Path)
	if dir == m.o.RunExtensions {
		ls.Skipped = "the image is in " + m.o.RunExtensions + " already"
		return ls
	}
	for _, d := range immucoreDirs {
		if dir == d {
			ls.Skipped = "immucore links the images of " + d + " itself (enable-sysext-confext)"
			return ls
		}
	}
	real := m.root.Real(ls.Link)
	fi, err := os.Lstat(real)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		if t, _ := os.Readlink(real); t == ls.Target {
			ls.Skipped = "linked already"
			return ls
		}
		t, _ := os.Readlink(real)
		ls.Error = fmt.Sprintf("%s exists and links to %s, not %s: left alone", ls.Link, t, ls.Target)
		return ls
	case err == nil:
		ls.Error = fmt.Sprintf("%s exists and is not a symlink: left alone", ls.Link)
		return ls
	case !errors.Is(err, fs.ErrNotExist):
		ls.Error = err.Error()
		return ls
	}
	if m.j.dry && m.j.made[ls.Link] {
		ls.Skipped = "linked already"
		return ls
	}
	if err := m.j.mkdirAll(m.o.RunExtensions, ""); err != nil {
		ls.Error = err.Error()
		return ls
	}
	if err := m.j.symlink(im.Name, ls.Link, ls.Target); err != nil {
		ls.Error = err.Error()
		return ls
	}
	if m.j.dry {
		m.j.made[ls.Link] = true
	}
	ls.Created = true
	return ls
}
