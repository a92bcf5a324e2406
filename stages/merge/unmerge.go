package merge

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// Unmerge undoes what state.json lists, newest first: unmounts the hierarchies, the firmware
// directory and the images, removes the images' dm-verity devices, gives firmware_class.path
// its previous value back, removes the links, files and directories Merge made, then
// state.json. What is gone already (systemd-sysext unmerged a hierarchy, a reboot of /run, a
// crash before a step) is skipped. What cannot be undone stays in state.json, and the error
// lists it.
//
// A State made before the pivot names the sysroot's hierarchies under its Sysroot
// (/sysroot/usr/lib); given another Options.Sysroot ("/" after the pivot), Unmerge looks for
// them there. A dry run changes nothing.
func Unmerge(root *hostfs.Root, ops sysops.Ops, opts Options) error {
	o, err := opts.normalized()
	if err != nil {
		return err
	}
	st, err := Load(root, o.RunDir)
	if notExist(err) {
		// Nothing journaled: at most a crash left RunDir and a half-written journal before
		// the first action.
		if err := removeState(root, o.RunDir); err != nil {
			return err
		}
		return removeRunDir(root, o.RunDir)
	}
	if err != nil {
		return err
	}
	if o.DryRun {
		return nil
	}
	_, err = undo(root, ops, st, o)
	return err
}

// maxStacked bounds the unmounts at one mount point (a crash loop may have stacked several
// mounts of ours there).
const maxStacked = 16

// undo reverts st's journal. What cannot be undone is returned, and left in state.json.
func undo(root *hostfs.Root, ops sysops.Ops, st *State, o Options) ([]Action, error) {
	u := &undoer{root: root, ops: ops, o: o, st: st}
	var kept []Action
	var problems []string
	for i := len(st.Actions) - 1; i >= 0; i-- {
		a := st.Actions[i]
		a.Path = rebase(a.Path, st.Sysroot, o.Sysroot)
		if err := u.undo(a); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", a, err))
			kept = append(kept, st.Actions[i])
		}
	}
	if len(problems) > 0 {
		slices.Reverse(kept)
		journal := st.Journal
		st.Actions, st.Complete, st.Journal = kept, false, ""
		if err := st.save(root); err != nil {
			st.Journal = journal
			problems = append(problems, err.Error())
		} else if journal != "" {
			_ = root.FS.Remove(path.Join(st.RunDir, journal))
		}
		return kept, fmt.Errorf("unmerge: %s", strings.Join(problems, "; "))
	}
	if err := removeState(root, st.RunDir); err != nil {
		return nil, err
	}
	return nil, removeRunDir(root, st.RunDir)
}

// removeRunDir removes RunDir, made before the journal started, if nothing else is in it.
func removeRunDir(root *hostfs.Root, runDir string) error {
	if err := root.FS.Remove(runDir); err != nil && !notExist(err) && !errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("unmerge: %w", err)
	}
	return nil
}

// rebase moves a path from the sysroot a State was made with to the one given now: after
// switch_root, /sysroot/usr/lib is /usr/lib.
func rebase(p, from, to string) string {
	if from == to || from == "/" {
		return p
	}
	if rel, ok := strings.CutPrefix(p, from+"/"); ok {
		return path.Join(to, rel)
	}
	return p
}

type undoer struct {
	root *hostfs.Root
	ops  sysops.Ops
	o    Options
	st   *State
}

func (u *undoer) undo(a Action) error {
	switch a.Kind {
	case ActMount:
		return u.unmount(a)
	case ActAttr:
		return u.restoreAttr(a)
	case ActLink:
		t, err := os.Readlink(u.root.Real(a.Path))
		if notExist(err) || (err == nil && t != a.Value) {
			return nil // gone, or someone else's now
		}
		if err != nil {
			return err
		}
		return ignoreNotExist(os.Remove(u.root.Real(a.Path)))
	case ActVerity:
		// After the mount on it (undone before, newest first). A device still held by a
		// lazily detached mount is removed when that goes (deferred removal). A failed
		// VerityCreate left nothing, and its name may be someone else's device (EBUSY); an
		// interrupted one may have made the device.
		if a.Error != "" {
			return nil
		}
		err := u.ops.VerityRemove(a.Path)
		if errors.Is(err, unix.ENXIO) {
			return nil // never made, or gone already
		}
		return err
	case ActFile:
		return ignoreNotExist(u.root.FS.Remove(a.Path))
	case ActMkdir:
		err := u.root.FS.Remove(a.Path)
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return nil // someone else's files are in it now (immucore's links in /run/extensions)
		}
		return ignoreNotExist(err)
	}
	// Loop devices clear themselves once their mount (or dm device) is gone; a remount goes
	// with its mount.
	return nil
}

// unmount takes Merge's mount off a.Path, and any more of its own stacked there, detaching it
// as systemd-sysext does (MNT_DETACH|UMOUNT_NOFOLLOW in unmerge_hierarchy()): a busy mount goes
// away from the tree at once and is released when its last user is. A mount of someone else's
// on top is left alone.
func (u *undoer) unmount(a Action) error {
	real := u.root.Real(a.Path)
	for range maxStacked {
		table, err := readMountInfo(u.o.MountInfo)
		if err != nil {
			return err
		}
		top, ok := topMount(table, real)
		if !ok {
			return nil
		}
		if !ownMount(a, top) {
			if ownBelow(table, real, a) {
				return fmt.Errorf("%s (%s from %s) is mounted over it; left in place", a.Path, top.FSType, top.Source)
			}
			return nil
		}
		if err := u.ops.Unmount(real, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("%s: still mounted after %d unmounts", a.Path, maxStacked)
}

// ownMount says the mount e is the one a made.
func ownMount(a Action, e mountEntry) bool {
	switch a.FSType {
	case "overlay":
		return e.FSType == "overlay" && e.Source == ourSource
	case "":
		return true // a bind mount, only ever made on RunDir/images/<name>
	}
	return e.FSType == a.FSType && (a.Source == "" || a.Source == dryLoop || a.Source == dryVerity || e.Source == a.Source)
}

// ownBelow says one of the mounts on mp under the top one is a's.
func ownBelow(table []mountEntry, mp string, a Action) bool {
	top, _ := topMount(table, mp)
	for _, e := range table {
		if e.MountPoint == mp && e.ID != top.ID && ownMount(a, e) {
			return true
		}
	}
	return false
}

// restoreAttr gives the attribute its previous value back, if it still holds Merge's. The
// kernel cannot be given an empty firmware_class.path back: sysfs drops a write of zero bytes
// before the parameter sees it (sysfs_kf_write(), fs/sysfs/file.c), and any other value would
// be searched. An empty previous value leaves Merge's in place; once the firmware directory is
// unmounted, the kernel finds nothing there and goes on to /lib/firmware (a missing file is
// skipped silently, fw_get_filesystem_firmware()).
func (u *undoer) restoreAttr(a Action) error {
	data, err := u.root.FS.ReadFile(a.Path)
	if err != nil {
		return err
	}
	if strings.TrimSuffix(string(data), "\n") != a.Value || a.Previous == "" {
		return nil
	}
	return u.ops.WriteAttr(u.root.Real(a.Path), a.Previous)
}

func ignoreNotExist(err error) error {
	if notExist(err) {
		return nil
	}
	return err
}
