package manifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

func TestScanStore(t *testing.T) {
	flat := t.TempDir() // the flat store the enable links point into
	mk := func(name string, files map[string]string) string {
		src := t.TempDir()
		imagetest.WriteTree(t, src, files)
		return src
	}
	fw := mk("fw", map[string]string{
		"usr/lib/extension-release.d/extension-release.fw": releaseText,
		"usr/lib/firmware/a.bin":                           "a",
	})
	other := mk("other", map[string]string{
		"usr/lib/extension-release.d/extension-release.other": releaseText,
		"usr/lib/firmware/b.bin.xz":                           "b",
	})
	bad := mk("bad", map[string]string{
		"usr/lib/extension-release.d/extension-release.bad": releaseText,
		"usr/lib/firmware/updates/c.bin":                    "c",
	})
	imagetest.Erofs(t, filepath.Join(flat, "fw.sysext.raw"), fw, "-zlz4")
	imagetest.Squashfs(t, filepath.Join(flat, "other.sysext.raw"), other, "xz")

	store := t.TempDir()
	os.Symlink(filepath.Join(flat, "fw.sysext.raw"), filepath.Join(store, "fw.sysext.raw"))
	os.Symlink(filepath.Join(flat, "other.sysext.raw"), filepath.Join(store, "other.sysext.raw"))
	os.Symlink(fw, filepath.Join(store, "fw.raw.d"))                                    // a directory image named "fw.raw.d" with the release of "fw"
	os.Symlink(filepath.Join(flat, "fw.sysext.raw"), filepath.Join(store, "zz-fw.raw")) // different name, same image: release mismatch
	os.Symlink(filepath.Join(flat, "fw.sysext.raw"), filepath.Join(store, "fw.raw"))    // same name "fw" as fw.sysext.raw
	os.Symlink(bad, filepath.Join(store, "bad"))
	os.WriteFile(filepath.Join(store, "junk.raw"), []byte("not an image at all"), 0o644)
	os.WriteFile(filepath.Join(store, "notes.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(store, ".hidden.raw"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(flat, "missing.raw"), filepath.Join(store, "gone.raw"))

	host, err := hostfs.New("/")
	if err != nil {
		t.Fatal(err)
	}
	images, rejected := ScanStore(host, store)
	var names []string
	for _, img := range images {
		names = append(names, img.Name+"="+filepath.Base(img.Path))
		if img.Target == "" {
			t.Errorf("%s: Target not set for a symlinked image", img.Path)
		}
	}
	if got := strings.Join(names, " "); got != "fw=fw.raw other=other.sysext.raw" {
		t.Errorf("images = %s, want fw=fw.raw other=other.sysext.raw", got)
	}
	want := map[string]string{
		"bad":           "usr/lib/firmware/updates exists",
		"fw.raw.d":      "no extension-release",
		"fw.sysext.raw": `image name "fw" is already taken by ` + filepath.Join(store, "fw.raw"),
		"gone.raw":      "no such file",
		"junk.raw":      "unknown image format",
		"notes.txt":     "systemd-sysext ignores regular files without the .raw suffix",
		"zz-fw.raw":     "no extension-release",
	}
	if len(rejected) != len(want) {
		t.Errorf("rejected %d entries, want %d: %+v", len(rejected), len(want), rejected)
	}
	for i, r := range rejected {
		w, ok := want[filepath.Base(r.Path)]
		if !ok || !strings.Contains(r.Reason, w) {
			t.Errorf("rejected %s (%s): %q, want it to contain %q", r.Path, r.Name, r.Reason, w)
		}
		if i > 0 && rejected[i-1].Name > r.Name {
			t.Errorf("rejected not ordered by name: %s before %s", rejected[i-1].Name, r.Name)
		}
	}
	if imgs, rej := ScanStore(host, filepath.Join(store, "nope")); len(rej) != 0 || len(imgs) != 0 {
		t.Errorf("a missing store holds no images and is no error: %+v %+v", imgs, rej)
	}
}
