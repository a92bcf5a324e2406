package sysops

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// TestLoopMountReadOnly attaches a real erofs image to a loop device, mounts it, reads a file,
// and checks that unmounting frees the loop device (autoclear). Needs root and loop devices.
func TestLoopMountReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		testkernel.Missing(t, "loop devices need root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testkernel.Missing(t, "no /dev/loop-control: %v", err)
	}
	mkfs := testkernel.Tool(t, "mkfs.erofs")
	src, dir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "fw.bin"), []byte("firmware"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img.raw")
	if out, err := exec.Command(mkfs, "--quiet", img, src).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v\n%s", err, out)
	}
	ops := Linux{}
	dev, hold, err := ops.LoopAttach(img, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	err = ops.Mount(dev, mnt, "erofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, "")
	hold.Close()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(mnt, "fw.bin"))
	if uerr := ops.Unmount(mnt, 0); uerr != nil {
		t.Error(uerr)
	}
	if err != nil || string(data) != "firmware" {
		t.Errorf("read through the loop mount: %q, %v", data, err)
	}
	// Autoclear: the device has no backing file once the mount is gone.
	backing, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if len(backing) != 0 {
		t.Errorf("%s still backed by %s after unmount", dev, backing)
	}
	if err := ops.WriteAttr(filepath.Join(dir, "missing-attr"), "1"); err == nil {
		t.Error("WriteAttr created a file: attributes must exist")
	}
}
