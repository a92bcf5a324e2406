package merge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// TestHostDDI merges GPT disk images as systemd-repart builds them (AuroraBoot's sysext
// output): each filesystem partition goes through a loop device over its bytes of the file
// (offset and size), a /usr partition on the root's usr directory, or alone on the usr
// directory of an empty root, as systemd mounts them. A DDI with a dm-verity hash partition
// that was not admitted (no verified root hash) is refused, never mounted directly; this host
// has no device-mapper, so dm-verity itself is proven in QEMU (tests/qemu_verity_test.go) and
// with the fake kernel (verity_test.go).
func TestHostDDI(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	if gpt.HostArch() != "x86-64" {
		t.Skipf("the images use x86-64 partition types; this host is %q", gpt.HostArch())
	}
	h := newHostSystem(t)
	store := h.dir + "/sysroot/var/lib/kairos/extensions/"
	tree := func(name string, files map[string]string) string {
		dir := filepath.Join(t.TempDir(), name)
		imagetest.WriteTree(t, dir, files)
		return dir
	}
	erofs := func(name, src string) string {
		img := filepath.Join(t.TempDir(), name+".erofs")
		imagetest.Erofs(t, img, src)
		return img
	}
	// a root partition (erofs)
	rootSrc := tree("ddi-root", firmwareFiles("ddi-root", "root.bin", "shared.bin"))
	gpttest.Repart(t, store+"ddi-root.raw", []gpttest.Part{{Type: "root", CopyBlocks: erofs("ddi-root", rootSrc)}})
	// a root partition with verity and a signature, as AuroraBoot makes them, not admitted
	verSrc := tree("ddi-verity", firmwareFiles("ddi-verity", "verity.bin"))
	gpttest.Repart(t, store+"ddi-verity.raw", []gpttest.Part{
		{Type: "root", CopyBlocks: erofs("ddi-verity", verSrc), Verity: "data", VerityMatchKey: "r"},
		{Type: "root-verity", Verity: "hash", VerityMatchKey: "r"},
		{Type: "root-verity-sig", Verity: "signature", VerityMatchKey: "r"},
	})
	// a /usr partition alone (squashfs)
	usrSrc := tree("ddi-usr", firmwareFiles("ddi-usr", "usr.bin"))
	gpttest.Repart(t, store+"ddi-usr.raw", []gpttest.Part{{Type: "usr", Format: "squashfs", CopyFiles: filepath.Join(usrSrc, "usr") + ":/"}})
	// root and /usr partitions: the /usr one covers the root's usr directory
	bothSrc := tree("ddi-both", firmwareFiles("ddi-both", "both.bin", "shared.bin"))
	rootOnly := tree("ddi-both-root", map[string]string{"usr/.keep": "", "etc/x": "x"})
	gpttest.Repart(t, store+"ddi-both.raw", []gpttest.Part{
		{Type: "root", CopyBlocks: erofs("ddi-both-root", rootOnly)},
		{Type: "usr", CopyBlocks: erofs("ddi-both-usr", filepath.Join(bothSrc, "usr"))},
	})
	h.images = nil
	sys := mustRoot(t, h.dir+"/sysroot")
	for _, n := range []string{"ddi-root", "ddi-usr", "ddi-both", "ddi-verity"} {
		img, err := manifests.ReadEntry(sys, "/var/lib/kairos/extensions/"+n+".raw")
		if err != nil {
			t.Fatal(err)
		}
		h.images = append(h.images, img)
	}
	baseline := mountTable(t)
	st, err := Merge(h.root, h.ops, h.images, h.opts)
	if err != nil {
		t.Fatal(err)
	}
	want := "image ddi-verity: partition 1 has a dm-verity hash partition (2) but no verified root hash"
	if p := st.Problems(); len(p) != 1 || !strings.HasPrefix(p[0], want) {
		t.Fatalf("problems: %q, want only %q...", p, want)
	}
	if _, err := os.Stat(h.dir + "/run/kairos-firmware/images/ddi-verity/usr"); !os.IsNotExist(err) {
		t.Errorf("the refused image's mount point has content: %v", err)
	}
	for name, want := range map[string]string{"root.bin": "ddi-root:root.bin", "usr.bin": "ddi-usr:usr.bin", "both.bin": "ddi-both:both.bin", "shared.bin": "ddi-root:shared.bin"} {
		for _, dir := range []string{"/run/kairos-firmware/firmware/", "/sysroot/usr/lib/firmware/"} {
			if got := h.read(t, dir+name); got != want {
				t.Errorf("%s%s = %q, want %q", dir, name, got, want)
			}
		}
	}
	if got := h.read(t, "/run/kairos-firmware/images/ddi-both/etc/x"); got != "x" {
		t.Errorf("the root partition under the /usr one: %q", got)
	}
	var windows []string
	for _, a := range st.Actions {
		if a.Kind == ActLoop {
			if !strings.HasPrefix(a.Data, "offset=") {
				t.Errorf("a loop over the whole DDI: %+v", a)
			}
			windows = append(windows, filepath.Base(a.Path)+" "+a.Data)
		}
		if a.Image == "ddi-verity" && (a.Kind == ActLoop || a.Kind == ActVerity || a.Kind == ActMount) {
			t.Errorf("the refused image got %s", a)
		}
	}
	if len(windows) != 4 {
		t.Errorf("loop devices: %q", windows)
	}
	t.Logf("loop devices: %q", windows)
	if err := Unmerge(h.root, h.ops, h.opts); err != nil {
		t.Fatal(err)
	}
	if got := mountTable(t); strings.Join(got, "\n") != strings.Join(baseline, "\n") {
		t.Errorf("mount table after Unmerge:\n%s\nbefore:\n%s", strings.Join(got, "\n"), strings.Join(baseline, "\n"))
	}
	loopsFree(t, st)
	if _, err := os.Stat(h.dir + "/run/kairos-firmware"); !os.IsNotExist(err) {
		t.Errorf("RunDir left: %v", err)
	}
}
