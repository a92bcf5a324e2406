package merge

import (
	"fmt"
	"path"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// imageFlags mount every image read-only, without device nodes or set-id programs.
const imageFlags = unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID

// blockSource is a filesystem inside an image file: bytes [Offset, Offset+Size) of File
// (Size 0: to the end) hold a filesystem of type FSType, to be mounted on the image's Sub
// directory ("" for the image root). A bare erofs or squashfs image is the whole file. A GPT
// DDI's filesystems are partitions: the root (or /usr) partition, plus a /usr partition on the
// root's usr directory when it has both, as systemd's dissected_image_mount() mounts them;
// package manifests finds them with the GPT reader. dm-verity is not set up (yet): the data
// partition is mounted directly, through the same window a verity device would take.
type blockSource struct {
	File   string
	Offset int64
	Size   int64
	FSType string
	Sub    string
}

// window describes the part of the file used, for the journal.
func (b blockSource) window() string {
	if b.Offset == 0 && b.Size == 0 {
		return ""
	}
	return fmt.Sprintf("offset=%d,size=%d", b.Offset, b.Size)
}

// fileSources lists the filesystems of the image file at the real path file, read as ifs.
func fileSources(file string, format manifests.Format, ifs *manifests.ImageFS) ([]blockSource, error) {
	switch format {
	case manifests.FormatErofs, manifests.FormatSquashfs:
		return []blockSource{{File: file, FSType: string(format)}}, nil
	case manifests.FormatGPT:
		d := ifs.DDI
		if d == nil || d.Partitions == nil {
			return nil, fmt.Errorf("GPT image without a partition to mount")
		}
		part, _ := d.Partitions.FS()
		if part == nil {
			return nil, fmt.Errorf("GPT image without a partition to mount")
		}
		first := blockSource{File: file, Offset: part.Offset, Size: part.Size, FSType: string(d.Inner)}
		if d.Partitions.Root == nil {
			// A /usr partition alone: systemd mounts it on the usr directory of an empty
			// root; here that root is the image's directory in RunDir.
			first.Sub = "usr"
			return []blockSource{first}, nil
		}
		out := []blockSource{first}
		if u := d.Partitions.Usr; u != nil {
			out = append(out, blockSource{File: file, Offset: u.Offset, Size: u.Size, FSType: string(d.UsrInner), Sub: "usr"})
		}
		return out, nil
	}
	return nil, fmt.Errorf("format %q cannot be mounted", format)
}

// imageMount is where an image is mounted: RunDir/images/<name>.
func imageMount(runDir, name string) string { return path.Join(runDir, "images", name) }

// mountImage mounts one image read-only on its mount point. It returns the first error;
// whatever was made is in the journal.
func (m *merger) mountImage(r *imageRec) error {
	j, im := m.j, r.st
	if manifests.Format(im.Format) == manifests.FormatDirectory {
		if err := j.mkdirAll(im.Mount, im.Name); err != nil {
			return err
		}
		// MS_RDONLY is ignored when a bind mount is created; it takes a second call with
		// MS_REMOUNT|MS_BIND to make the new mount read-only (mount(2), "Creating a bind
		// mount"; systemd-sysext does the same, bind_remount_recursive() in merge_subprocess).
		if err := j.mount(im.Name, m.root.Real(im.File), im.Mount, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := j.remount(im.Name, im.Mount, unix.MS_BIND|unix.MS_REMOUNT|imageFlags); err != nil {
			// A writable view of the image must not stay behind.
			m.unmountNow(im.Mount)
			return err
		}
		return nil
	}
	for i, src := range r.content.sources {
		mp := path.Join(im.Mount, src.Sub)
		// The first filesystem goes on the image's directory (or, a /usr partition alone, on
		// its usr directory); a /usr partition after a root one goes on the root's usr.
		if i == 0 {
			if err := j.mkdirAll(mp, im.Name); err != nil {
				return err
			}
		}
		dev, hold, err := j.loop(im.Name, src)
		if err != nil {
			return err
		}
		if im.Device == "" {
			im.Device = dev
		}
		err = j.mount(im.Name, dev, mp, src.FSType, imageFlags, "")
		// The device auto-clears: held until here, it now lives as long as the mount, or
		// frees itself at once if the mount failed (sysops.LoopAttach).
		hold.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// unmountNow takes a mount Merge has just made off again (the journal still lists it; an
// Unmerge finds it gone).
func (m *merger) unmountNow(mp string) {
	_ = m.ops.Unmount(m.root.Real(mp), unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
}
