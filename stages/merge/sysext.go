package merge

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// hierarchyFlags are systemd-sysext's overlay flags: MS_RDONLY|MS_NODEV
// (image_class_info[IMAGE_SYSEXT].default_mount_flags in src/sysext/sysext.c,
// https://github.com/systemd/systemd/blob/main/src/sysext/sysext.c). systemd 252 passed
// MS_RDONLY alone (mount_overlayfs() in v252); nodev is the stricter of the two.
const hierarchyFlags = unix.MS_RDONLY | unix.MS_NODEV

// markerDir is systemd-sysext's metadata directory, on top of every merged hierarchy.
const markerDir = ".systemd-sysext"

// metaDir is the top layer of a hierarchy's overlay, RunDir/meta/<hierarchy>, as systemd's
// is <workspace>/meta/<hierarchy>.
func metaDir(runDir, h string) string { return path.Join(runDir, "meta", h) }

// mergeHierarchy merges the images that populate h into the sysroot's h the way
// merge_hierarchy() in src/sysext/sysext.c does, so that systemd-sysext after the pivot takes
// the merge for one of its own:
//
//   - one read-only overlay, lowerdir=<meta>:<ext_N>:...:<ext_1>:<host>, extensions sorted
//     with strverscmp_improved() and the newest on top, the host's directory last (left out
//     when empty, as systemd does);
//   - <meta>/.systemd-sysext/extensions lists the extensions merged, oldest first, one per
//     line (write_extensions_file(): strv_join(extensions, "\n") plus write_string_file()'s
//     newline);
//   - after mounting, <meta>/.systemd-sysext/dev holds the overlay's st_dev as "major:minor"
//     (write_dev_file()). is_our_mount_point() takes a hierarchy for a merge of its own when
//     it is a mount point and that file matches its st_dev; `systemd-sysext unmerge` and
//     `refresh` then unmount it (unmerge_hierarchy(), MNT_DETACH) before merging again, instead
//     of stacking on it.
//
// systemd mounts the overlay in a private workspace and bind-mounts it into place; Merge
// mounts it in place. The results differ in the source field and the layers' paths
// (docs/merge.md).
func (m *merger) mergeHierarchy(h string, layers []*imageRec, names []string) HierarchyState {
	hs := HierarchyState{Hierarchy: h, Target: path.Join(m.o.Sysroot, h)}
	for _, r := range layers {
		hs.Layers = append(hs.Layers, r.st.Name)
	}
	if why := m.refusal(h, hs.Target, layers); why != "" {
		hs.Refused = why
		return hs
	}
	meta := metaDir(m.o.RunDir, h)
	lower := []string{m.root.Real(meta)}
	for _, r := range layers {
		lower = append(lower, m.root.Real(path.Join(r.st.Mount, h)))
	}
	// The host's directory is the bottom layer unless it is empty (hierarchy_as_lower_dir()).
	if ents, err := m.root.FS.ReadDir(hs.Target); err != nil {
		hs.Error = err.Error()
		return hs
	} else if len(ents) > 0 {
		lower = append(lower, m.root.Real(hs.Target))
	}
	data, err := lowerdirOption(lower)
	if err != nil {
		hs.Error = err.Error()
		return hs
	}
	hs.Data = data
	marker := path.Join(meta, markerDir)
	if err := m.j.mkdirAll(marker, ""); err != nil {
		hs.Error = err.Error()
		return hs
	}
	if err := m.j.writeFile(path.Join(marker, "extensions"), strings.Join(names, "\n")+"\n"); err != nil {
		hs.Error = err.Error()
		return hs
	}
	if err := m.j.mount("", ourSource, hs.Target, "overlay", hierarchyFlags, data); err != nil {
		hs.Error = err.Error()
		return hs
	}
	// The overlay's device number exists only now. Writing into a lower layer of a mounted
	// overlay is what systemd does too; overlayfs tolerates it ("Changes to underlying
	// filesystems", Documentation/filesystems/overlayfs.rst).
	dev := "0:0"
	err = nil
	if !m.j.dry {
		dev, err = m.devOf(hs.Target)
	}
	if err == nil {
		err = m.j.writeFile(path.Join(marker, "dev"), dev+"\n")
	}
	if err != nil {
		// Without its marker systemd-sysext would not know the merge for one of its own and
		// would stack its merge on it after the pivot: take it down again.
		hs.Error = err.Error()
		m.unmountNow(hs.Target)
	}
	return hs
}

// refusal says why h must not be merged, or "".
func (m *merger) refusal(h, target string, layers []*imageRec) string {
	// The hierarchy itself and every parent must be real directories in the sysroot: an
	// overlay directory mounted over a symlink replaces the link (kairos#4290).
	parts := strings.Split(strings.TrimPrefix(h, "/"), "/")
	for i := range parts {
		p := "/" + strings.Join(parts[:i+1], "/")
		fi, err := m.target.FS.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("%s does not exist in the sysroot", p)
		case err != nil:
			return err.Error()
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Sprintf("%s is a symlink in the sysroot: an overlay would put a directory in its place (kairos#4290)", p)
		case !fi.IsDir():
			return fmt.Sprintf("%s is not a directory in the sysroot", p)
		}
	}
	// A merge systemd-sysext made is its own to replace (`systemd-sysext refresh`); Merge does
	// not stack on it. One of Merge's own would have been undone already (a dry run counts it
	// as replaced).
	if top, ok := topMount(m.table, m.root.Real(target)); ok && !(top.FSType == "overlay" && top.Source == ourSource) {
		if m.isSysextMerge(target) {
			return fmt.Sprintf("already merged by systemd-sysext (%s from %s); `systemd-sysext refresh` replaces it", top.FSType, top.Source)
		}
	}
	// No directory of an image may land on a symlink of the sysroot either, the case of
	// kairos#4290: an image's usr/lib/firmware/updates/ over the base's
	// /usr/lib/firmware/updates -> /usr/local/lib/firmware.
	var clashes []string
	for _, r := range layers {
		found, err := r.content.clashes[h], r.content.clashErrs[h]
		if err != nil {
			return fmt.Sprintf("reading %s: %v", r.st.Name, err)
		}
		for _, c := range found {
			clashes = append(clashes, r.st.Name+"'s "+c)
		}
	}
	if len(clashes) > 0 {
		const shown = 5
		more := ""
		if len(clashes) > shown {
			more = fmt.Sprintf(" and %d more", len(clashes)-shown)
			clashes = clashes[:shown]
		}
		return fmt.Sprintf("image directories would replace symlinks of the sysroot (kairos#4290): %s%s", strings.Join(clashes, "; "), more)
	}
	return ""
}

// isSysextMerge is is_our_mount_point() without the mount point test: the hierarchy carries
// .systemd-sysext/dev naming its own device.
func (m *merger) isSysextMerge(target string) bool {
	data, err := m.root.FS.ReadFile(path.Join(target, markerDir, "dev"))
	if err != nil {
		return false
	}
	dev, err := m.devOf(target)
	return err == nil && strings.TrimSpace(string(data)) == dev
}

// devOf returns the st_dev of p (under the root) as systemd's FORMAT_DEVNUM writes it.
func (m *merger) devOf(p string) (string, error) {
	fi, err := m.root.FS.Lstat(p)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("%s: no device number", p)
	}
	return fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))), nil
}
