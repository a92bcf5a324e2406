package merge

import (
	"fmt"
	"io"
	"path"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/verity"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// imageFlags mount every image read-only, without device nodes or set-id programs.
const imageFlags = unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID

// blockSource is a filesystem inside an image file: bytes [Offset, Offset+Size) of File
// (Size 0: to the end) hold a filesystem of type FSType, to be mounted on the image's Sub
// directory ("" for the image root). A bare erofs or squashfs image is the whole file. A GPT
// DDI's filesystems are partitions: the root (or /usr) partition, plus a /usr partition on the
// root's usr directory when it has both, as systemd's dissected_image_mount() mounts them;
// package manifests finds them with the GPT reader. A partition with a dm-verity hash partition
// is mounted through a dm-verity device over both (Verity), never directly.
type blockSource struct {
	File   string
	Offset int64
	Size   int64
	FSType string
	Sub    string
	Verity *veritySource
}

// veritySource is the dm-verity side of a DDI partition: its hash partition in the same file,
// the tree's parameters read from the superblock there, and the root hash the plan verified
// the tree against (manifests.Admit), which the kernel then checks every block read against.
type veritySource struct {
	// Name is the device-mapper name: kairos-firmware-<image>, with "-usr" for a /usr
	// partition mounted on a root one.
	Name         string
	Offset, Size int64
	Params       verity.Params
	RootHash     []byte
}

// dmPrefix starts the name of every device-mapper device Merge makes.
const dmPrefix = "kairos-firmware-"

// window describes the part of a file a loop device uses, for the journal.
func window(offset, size int64) string {
	if offset == 0 && size == 0 {
		return ""
	}
	return fmt.Sprintf("offset=%d,size=%d", offset, size)
}

// fileSources lists the filesystems of image's file at the real path file, read as ifs.
// rootHashes are the image's verified root hashes by data partition number
// (manifests.Image.RootHashes).
func fileSources(image, file string, format manifests.Format, ifs *manifests.ImageFS, rootHashes map[int][]byte) ([]blockSource, error) {
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
		hash := d.Partitions.RootVerity
		if d.Partitions.Root == nil {
			hash = d.Partitions.UsrVerity
		}
		first := blockSource{File: file, Offset: part.Offset, Size: part.Size, FSType: string(d.Inner)}
		var err error
		if first.Verity, err = veritySide(d.Table, part, hash, rootHashes, dmPrefix+image); err != nil {
			return nil, err
		}
		if d.Partitions.Root == nil {
			// A /usr partition alone: systemd mounts it on the usr directory of an empty
			// root; here that root is the image's directory in RunDir.
			first.Sub = "usr"
			return []blockSource{first}, nil
		}
		out := []blockSource{first}
		if u := d.Partitions.Usr; u != nil {
			usr := blockSource{File: file, Offset: u.Offset, Size: u.Size, FSType: string(d.UsrInner), Sub: "usr"}
			if usr.Verity, err = veritySide(d.Table, u, d.Partitions.UsrVerity, rootHashes, dmPrefix+image+"-usr"); err != nil {
				return nil, err
			}
			out = append(out, usr)
		}
		return out, nil
	}
	return nil, fmt.Errorf("format %q cannot be mounted", format)
}

// veritySide describes the dm-verity device for the data partition data, whose hash partition
// is hash (nil: none, the partition is mounted directly). It reads the superblock at the start
// of the hash partition, as systemd's crypt_load(CRYPT_VERITY) does at offset 0 there. The
// parameters need no trust: they are hashed into the tree, so any other value fails the root
// hash in the kernel. The root hash must be the verified one: without it, no mount.
func veritySide(table *gpt.Table, data, hash *gpt.Partition, rootHashes map[int][]byte, name string) (*veritySource, error) {
	if hash == nil {
		return nil, nil
	}
	rh := rootHashes[data.Number]
	if len(rh) == 0 {
		return nil, fmt.Errorf("partition %d has a dm-verity hash partition (%d) but no verified root hash: the image was not admitted (manifests.Admit), and it is never mounted without dm-verity", data.Number, hash.Number)
	}
	if table == nil {
		return nil, fmt.Errorf("partition %d: no partition table to read its hash partition %d from", data.Number, hash.Number)
	}
	p, err := verity.ReadSuperblock(table.Section(hash))
	if err != nil {
		return nil, fmt.Errorf("partition %d's hash partition %d: %w", data.Number, hash.Number, err)
	}
	if p.DataSize() > data.Size {
		return nil, fmt.Errorf("partition %d: %d bytes, its hash tree (partition %d) covers %d blocks of %d bytes = %d", data.Number, data.Size, hash.Number, p.DataBlocks, p.DataBlockSize, p.DataSize())
	}
	return &veritySource{Name: name, Offset: hash.Offset, Size: hash.Size, Params: *p, RootHash: append([]byte(nil), rh...)}, nil
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
		dev, hold, err := m.attach(r, src)
		if err != nil {
			return err
		}
		if im.Device == "" {
			im.Device = dev
		}
		err = j.mount(im.Name, dev, mp, src.FSType, imageFlags, "")
		hold.Close()
		if err != nil {
			if src.Verity != nil && !j.dry {
				// Nothing uses the dm device now; its loop devices free themselves once it
				// is gone. (The journal lists it: an Unmerge finds it gone.)
				_ = m.ops.VerityRemove(src.Verity.Name)
			}
			return err
		}
	}
	return nil
}

// attach makes the block device src is mounted from: a loop device over its bytes of the file,
// or, for a partition with verity, a dm-verity device over a loop device on the data partition
// and one on the hash partition. Loop devices auto-clear (sysops.LoopAttach): the returned hold
// keeps a plain one until it is mounted; the two under a dm device are held by the device from
// its table load on, and free themselves when it is removed (or at once if it was not made).
func (m *merger) attach(r *imageRec, src blockSource) (string, io.Closer, error) {
	j, name := m.j, r.st.Name
	dev, hold, err := j.loop(name, src.File, src.Offset, src.Size)
	if err != nil {
		return "", nil, err
	}
	if src.Verity == nil {
		return dev, hold, nil
	}
	defer hold.Close()
	v := src.Verity
	hashDev, hashHold, err := j.loop(name, src.File, v.Offset, v.Size)
	if err != nil {
		return "", nil, err
	}
	defer hashHold.Close()
	vdev, err := j.verity(name, v.Name, sysops.VerityTarget{DataDev: dev, HashDev: hashDev, Params: v.Params, RootHash: v.RootHash})
	if err != nil {
		return "", nil, err
	}
	r.st.Verity = append(r.st.Verity, v.Name)
	return vdev, io.NopCloser(nil), nil
}

// unmountNow takes a mount Merge has just made off again (the journal still lists it; an
// Unmerge finds it gone).
func (m *merger) unmountNow(mp string) {
	_ = m.ops.Unmount(m.root.Real(mp), unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
}
