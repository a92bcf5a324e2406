package merge

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// fakeKernel is sysops.Ops over a mount table of its own. The embedded Recorder records every
// call; mounts and unmounts change the table, which is written to a mountinfo file after each
// change; an attribute is a file holding the last value written and a newline, as a sysfs
// string parameter reads back. fail, when set, is asked after each call is recorded and may
// fail it.
type fakeKernel struct {
	*sysops.Recorder
	t         testing.TB
	mountinfo string
	nextID    int
	mounts    []mountEntry
	fail      func(call string) error
	// dm are the device-mapper devices: name -> node.
	dm map[string]string
}

var _ sysops.Ops = (*fakeKernel)(nil)

func newFakeKernel(t testing.TB) *fakeKernel {
	k := &fakeKernel{Recorder: &sysops.Recorder{}, t: t, mountinfo: filepath.Join(t.TempDir(), "mountinfo"), nextID: 100, dm: map[string]string{}}
	k.mounts = []mountEntry{{ID: 1, Parent: 0, Dev: "0:1", Root: "/", MountPoint: "/", Options: "rw", FSType: "rootfs", Source: "rootfs", Super: "rw"}}
	k.write()
	return k
}

func (k *fakeKernel) last() string { return k.Recorder.Calls[len(k.Recorder.Calls)-1] }

func (k *fakeKernel) failed() error {
	if k.fail == nil {
		return nil
	}
	return k.fail(k.last())
}

func (k *fakeKernel) write() {
	var b strings.Builder
	for _, e := range k.mounts {
		fmt.Fprintf(&b, "%d %d %s %s %s %s - %s %s %s\n", e.ID, e.Parent, e.Dev, e.Root, mangle(e.MountPoint), e.Options, e.FSType, mangle(e.Source), mangle(e.Super))
	}
	if err := os.WriteFile(k.mountinfo, []byte(b.String()), 0o644); err != nil {
		k.t.Fatal(err)
	}
}

func mangle(s string) string {
	if s == "" {
		return "none"
	}
	return strings.NewReplacer(" ", `\040`, "\t", `\011`, "\n", `\012`, `\`, `\134`).Replace(s)
}

func mountOptions(flags uintptr) string {
	o := "rw"
	if flags&unix.MS_RDONLY != 0 {
		o = "ro"
	}
	if flags&unix.MS_NOSUID != 0 {
		o += ",nosuid"
	}
	if flags&unix.MS_NODEV != 0 {
		o += ",nodev"
	}
	return o + ",relatime"
}

func (k *fakeKernel) Mount(source, target, fstype string, flags uintptr, data string) error {
	k.Recorder.Mount(source, target, fstype, flags, data)
	if err := k.failed(); err != nil {
		return err
	}
	top, covered := topMount(k.mounts, target)
	if flags&unix.MS_REMOUNT != 0 {
		if !covered {
			return fmt.Errorf("mount %s: %w", target, unix.EINVAL)
		}
		for i := range k.mounts {
			if k.mounts[i].ID == top.ID {
				k.mounts[i].Options = mountOptions(flags)
			}
		}
		k.write()
		return nil
	}
	e := mountEntry{ID: k.nextID, Parent: 1, Dev: fmt.Sprintf("0:%d", k.nextID), Root: "/", MountPoint: target,
		Options: mountOptions(flags), FSType: fstype, Source: source, Super: data}
	if covered {
		e.Parent = top.ID
	}
	if flags&unix.MS_BIND != 0 {
		e.FSType, e.Root, e.Source, e.Super = "ext4", source, "/dev/sda1", "rw"
	}
	k.nextID++
	k.mounts = append(k.mounts, e)
	k.write()
	return nil
}

func (k *fakeKernel) Unmount(target string, flags int) error {
	k.Recorder.Unmount(target, flags)
	if err := k.failed(); err != nil {
		return err
	}
	top, ok := topMount(k.mounts, target)
	if !ok {
		return fmt.Errorf("unmount %s: %w", target, unix.EINVAL)
	}
	for i, e := range k.mounts {
		if e.ID == top.ID {
			k.mounts = append(k.mounts[:i], k.mounts[i+1:]...)
			break
		}
	}
	k.write()
	return nil
}

func (k *fakeKernel) LoopAttach(file string, offset, size int64) (string, io.Closer, error) {
	dev, hold, err := k.Recorder.LoopAttach(file, offset, size)
	if err == nil {
		err = k.failed()
	}
	return dev, hold, err
}

// VerityCreate makes a device-mapper device, refusing a name in use as dm_hash_insert does.
func (k *fakeKernel) VerityCreate(name string, t sysops.VerityTarget) (string, error) {
	if _, ok := k.dm[name]; ok {
		k.Recorder.VerityCreate(name, t)
		return "", fmt.Errorf("dm-verity %s: DM_DEV_CREATE: %w", name, unix.EBUSY)
	}
	dev, err := k.Recorder.VerityCreate(name, t)
	if err == nil {
		err = k.failed()
	}
	if err != nil {
		return "", err
	}
	k.dm[name] = dev
	return dev, nil
}

// VerityRemove removes a device-mapper device; an unknown name is ENXIO, as dev_remove says.
func (k *fakeKernel) VerityRemove(name string) error {
	k.Recorder.VerityRemove(name)
	if err := k.failed(); err != nil {
		return err
	}
	if _, ok := k.dm[name]; !ok {
		return fmt.Errorf("dm-verity %s: remove: DM_DEV_REMOVE: %w", name, unix.ENXIO)
	}
	delete(k.dm, name)
	return nil
}

// WriteAttr stores value like param_set_copystring: at most 255 bytes, read back with a
// newline.
func (k *fakeKernel) WriteAttr(path, value string) error {
	k.Recorder.WriteAttr(path, value)
	if err := k.failed(); err != nil {
		return err
	}
	if len(value) > maxFirmwarePath {
		return fmt.Errorf("write %q to %s: %w", value, path, unix.ENOSPC)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return os.WriteFile(path, []byte(value+"\n"), 0o644)
}

// table is the mount table without the root, as "mountpoint fstype source options super"
// lines with dir replaced by $ROOT.
func (k *fakeKernel) table(dir string) []string {
	var out []string
	for _, e := range k.mounts[1:] {
		out = append(out, strings.ReplaceAll(fmt.Sprintf("%s %s %s %s %s", e.MountPoint, e.FSType, e.Source, e.Options, e.Super), dir, "$ROOT"))
	}
	return out
}
