package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/stages/merge"
	"github.com/kairos-io/kairos-firmware/stages/plan"
	"github.com/kairos-io/kairos-firmware/stages/report"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestBillOfMaterialsHashesFromImageFiles: for images without a manifest, the files the plan
// chose an image for are hashed from the image file (an erofs image and a directory image
// here), a symlinked name gets its target's digest, a name two layers have is the top layer's,
// the other files are listed without a digest (and a warning counts them), and an image file
// that cannot be read is an error naming it, not a wrong digest.
func TestBillOfMaterialsHashesFromImageFiles(t *testing.T) {
	dir := t.TempDir()
	release := func(name string) string { return "usr/lib/extension-release.d/extension-release." + name }
	imagetest.WriteTree(t, filepath.Join(dir, "src/low"), map[string]string{
		release("low"):                     "ID=_any\n",
		"usr/lib/firmware/vendor/a.bin":    "low a",
		"usr/lib/firmware/vendor/b.bin":    "low b",
		"usr/lib/firmware/vendor/link.bin": "->b.bin",
		"usr/lib/firmware/vendor/c.bin":    "low c, not needed",
	})
	if err := os.MkdirAll(filepath.Join(dir, "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	imagetest.Erofs(t, filepath.Join(dir, "store/low.raw"), filepath.Join(dir, "src/low"))
	imagetest.WriteTree(t, filepath.Join(dir, "store/top"), map[string]string{
		release("top"):                  "ID=_any\n",
		"usr/lib/firmware/vendor/a.bin": "top a",
	})
	imagetest.WriteTree(t, filepath.Join(dir, "store/gone"), map[string]string{
		release("gone"):                  "ID=_any\n",
		"usr/lib/firmware/gone/lost.bin": "lost",
	})
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	var images []*manifests.Image
	for _, entry := range []string{"top", "low.raw", "gone"} {
		img, err := manifests.ReadEntry(root, "/store/"+entry)
		if err != nil {
			t.Fatal(err)
		}
		if img.FromManifest {
			t.Fatalf("%s has a manifest: the test is about images without one", entry)
		}
		images = append(images, img)
	}
	// The gone image was merged, and its file is gone since.
	if err := os.RemoveAll(filepath.Join(dir, "store/gone")); err != nil {
		t.Fatal(err)
	}
	st := &merge.State{Firmware: merge.FirmwareState{Dir: "/run/kairos-firmware/firmware", Layers: []string{"top", "low", "gone"}}}
	for _, img := range images {
		st.Images = append(st.Images, merge.ImageState{Name: img.Name, Path: img.Path, File: img.Path})
	}
	selected := []plan.Selection{
		{Name: "top", Reasons: []plan.Reason{{Firmware: []string{"vendor/a.bin"}}}},
		{Name: "low", Reasons: []plan.Reason{{Firmware: []string{"vendor/a.bin", "vendor/b.bin", "vendor/link.bin"}}}},
		{Name: "gone", Reasons: []plan.Reason{{Firmware: []string{"gone/lost.bin"}}}},
	}
	rep := report.New("apply", st.Time)
	bom := billOfMaterials(root, st, images, selected, rep)

	got := map[string]report.Firmware{}
	for _, f := range bom {
		got[f.Name] = f
	}
	for name, want := range map[string]struct{ image, sha string }{
		"vendor/a.bin":    {"top", sha("top a")},
		"vendor/b.bin":    {"low", sha("low b")},
		"vendor/link.bin": {"low", sha("low b")},
		"vendor/c.bin":    {"low", ""},
		"gone/lost.bin":   {"gone", ""},
	} {
		f, ok := got[name]
		if !ok || f.Image != want.image || f.SHA256 != want.sha {
			t.Errorf("%s: %+v, want image %s sha256 %q", name, f, want.image, want.sha)
		}
	}
	if len(bom) != 5 {
		t.Errorf("%d entries, want 5: %+v", len(bom), bom)
	}
	if errs := strings.Join(rep.Errors, "\n"); len(rep.Errors) != 1 || !strings.Contains(errs, "store/gone") {
		t.Errorf("errors %q: want one naming the unreadable store/gone", rep.Errors)
	}
	if warns := strings.Join(rep.Warnings, "\n"); !strings.Contains(warns, "image low has no embedded manifest: 1 of its firmware files") {
		t.Errorf("warnings %q: want low's unhashed file counted", rep.Warnings)
	}
}
