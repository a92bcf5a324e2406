package split

import (
	"errors"
	"strings"
	"testing"
)

// declarations of the fake kernel the membership tests use.
var testDecl = map[string][]string{
	"alpha":    {"alpha/a.bin", "alpha/packed.bin", "alpha/link.bin", "alpha/absent.bin", "/etc/passwd", "../up.bin"},
	"beta":     {"common/shared.bin", "beta/b.bin"},
	"gamma":    {"common/shared.bin", "gamma/g.bin"},
	"brcmfmac": {"brcm/brcmfmac*-sdio.*.bin"},
	"nouveau":  {"nvidia/ad103/gsp/booter.bin"},
	"quiet":    {},
}

// testTree has plain, compressed, linked and wildcard-matched firmware, a directory link,
// files no module declares and links that lead nowhere usable.
var testTree = map[string]string{
	"alpha/a.bin":          "a",
	"alpha/packed.bin.xz":  "packed xz",
	"alpha/packed.bin.zst": "packed zst",
	"alpha/link.bin":       "->../real/target.bin",
	"alpha/alias.bin":      "->a.bin",                     // nobody asks for it: it goes with a.bin
	"alpha/abs.bin":        "->/lib/firmware/alpha/a.bin", // absolute, back into the tree
	"real/target.bin":      "target",
	"common/shared.bin":    "shared",
	"beta/b.bin":           "b",
	"gamma/g.bin":          "g",
	"brcm/brcmfmac43455-sdio.raspberrypi,4.bin":     "sdio",
	"brcm/brcmfmac43455-sdio.raspberrypi,3.bin.zst": "sdio zst",
	"brcm/brcmfmac43455-pcie.bin":                   "pcie", // the wildcard does not match it
	"nvidia/ad102/gsp/booter.bin":                   "booter",
	"nvidia/ad102/gsp/other.bin":                    "other",
	"nvidia/ad103":                                  "->ad102",
	"WHENCE":                                        "licences",
	"intel-ucode/06-8e-09":                          "microcode",
	"unclaimed.lnk":                                 "->intel-ucode/06-8e-09",
	"outside.bin":                                   "->/etc/hostname",
	"climbs.bin":                                    "->../x.bin",
	"dangling.bin":                                  "->nothing.bin",
	"loop-a":                                        "->loop-b",
	"loop-b":                                        "->loop-a",
	"empty-dir-link":                                "->emptydir",
	"emptydir/sub/.keep-dir":                        "->.", // a directory holding only a link to itself
}

func TestMembership(t *testing.T) {
	fw := firmwareTree(t, testTree)
	a, tr := planOf(t, fw, fakeKernel(t, testDecl))
	assertEqual(t, "images", contents(a), map[string][]string{
		"firmware-alpha": {"alpha/a.bin", "alpha/abs.bin", "alpha/alias.bin", "alpha/link.bin", "alpha/packed.bin.xz", "alpha/packed.bin.zst", "real/target.bin"},
		"firmware-beta":  {"beta/b.bin"},
		"firmware-gamma": {"gamma/g.bin"},
		// a file two modules declare: the image of the set
		"firmware-beta+gamma": {"common/shared.bin"},
		"firmware-brcmfmac":   {"brcm/brcmfmac43455-sdio.raspberrypi,3.bin.zst", "brcm/brcmfmac43455-sdio.raspberrypi,4.bin"},
		// the directory link goes with the file nouveau asks for through it
		"firmware-nouveau": {"nvidia/ad102/gsp/booter.bin", "nvidia/ad103"},
		// the other file under ad102 goes to the catch-all, and so does the link, to resolve it
		"linux-firmware-other": {"WHENCE", "brcm/brcmfmac43455-pcie.bin", "intel-ucode/06-8e-09", "nvidia/ad102/gsp/other.bin", "nvidia/ad103", "unclaimed.lnk"},
	})
	for name, kind := range map[string]string{"firmware-alpha": KindModule, "firmware-beta+gamma": KindShared, "linux-firmware-other": KindCatchAll} {
		if a.images[name].kind != kind {
			t.Errorf("%s is a %s image, want %s", name, a.images[name].kind, kind)
		}
	}
	assertEqual(t, "modules of the shared image", sortedKeys(a.images["firmware-beta+gamma"].modules), []string{"beta", "gamma"})
	warnings := strings.Join(a.warnings, "\n")
	for _, want := range []string{
		"link outside.bin -> /etc/hostname left out: leads outside the firmware directory",
		"link climbs.bin -> ../x.bin left out: leads outside the firmware directory",
		"link dangling.bin -> nothing.bin left out: nothing.bin: target missing",
		"link loop-a -> loop-b left out: too many levels of symbolic links",
		"link empty-dir-link -> emptydir left out: the directory it leads to holds no file",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}

	// What each image offers: links under their own names, the directory link walked.
	names := func(img string) []string {
		var out []string
		for _, o := range offers(tr, a.images[img]) {
			out = append(out, o.name+"="+o.file)
		}
		return out
	}
	assertEqual(t, "firmware-nouveau offers", names("firmware-nouveau"), []string{
		"nvidia/ad102/gsp/booter.bin=nvidia/ad102/gsp/booter.bin", "nvidia/ad103/gsp/booter.bin=nvidia/ad102/gsp/booter.bin"})
	assertEqual(t, "firmware-alpha offers", names("firmware-alpha"), []string{
		"alpha/a.bin=alpha/a.bin", "alpha/abs.bin=alpha/a.bin", "alpha/alias.bin=alpha/a.bin", "alpha/link.bin=real/target.bin",
		"alpha/packed.bin.xz=alpha/packed.bin.xz", "alpha/packed.bin.zst=alpha/packed.bin.zst", "real/target.bin=real/target.bin"})
}

func TestGroups(t *testing.T) {
	fw := firmwareTree(t, testTree)
	kernel := fakeKernel(t, testDecl)
	// A group takes its modules' files and the files they share with others; the first group
	// on the command line wins a file two groups need.
	a, _ := planOf(t, fw, kernel, Group{Name: "net", Modules: []string{"beta"}}, Group{Name: "more", Modules: []string{"gamma", "alpha"}})
	got := contents(a)
	assertEqual(t, "net", got["net"], []string{"beta/b.bin", "common/shared.bin"})
	assertEqual(t, "more", got["more"], []string{"alpha/a.bin", "alpha/abs.bin", "alpha/alias.bin", "alpha/link.bin",
		"alpha/packed.bin.xz", "alpha/packed.bin.zst", "gamma/g.bin", "real/target.bin"})
	for _, gone := range []string{"firmware-alpha", "firmware-beta", "firmware-gamma", "firmware-beta+gamma"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s exists although a group holds its modules", gone)
		}
	}
	if a.images["net"].kind != KindGroup {
		t.Errorf("net is a %s image", a.images["net"].kind)
	}
	assertEqual(t, "net's modules", sortedKeys(a.images["net"].modules), []string{"beta", "gamma"})
	assertEqual(t, "notes", a.notes, []string{"group net holds 1 file that gamma also declares (a --group takes the files its modules share)"})

	// Every problem at once: a clash of names, an unknown module, a module in two groups.
	tr, _, _ := readTree(fw)
	modules, _, err := kernelModules(options(t, fw, kernel, FormatDirectory))
	if err != nil {
		t.Fatal(err)
	}
	_, err = assign(tr, modules, []Group{{Name: "g1", Modules: []string{"beta", "nosuch"}}, {Name: "g2", Modules: []string{"beta"}}, {Name: "bad/name", Modules: []string{"gamma"}}}, DefaultCatchAll)
	var p Problems
	if !errors.As(err, &p) || len(p) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	for _, want := range []string{`--group g1: the kernel has no module "nosuch"`, "--group g2: module beta is already in group g1", `--group "bad/name" is not a usable image name`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q: %v", want, err)
		}
	}
	_, err = assign(tr, modules, nil, "firmware-beta")
	if err == nil || !strings.Contains(err.Error(), "two images are called firmware-beta: a module image and a catch-all image") &&
		!strings.Contains(err.Error(), "two images are called firmware-beta: a catch-all image and a module image") {
		t.Errorf("a catch-all named like a module image: %v", err)
	}
}

func TestSharedImageNames(t *testing.T) {
	assertEqual(t, "short", sharedImage([]string{"amdgpu", "radeon"}), "firmware-amdgpu+radeon")
	long := []string{"snd_echo3g", "snd_gina24", "snd_indigo", "snd_indigodj", "snd_indigodjx", "snd_indigoio", "snd_indigoiox", "snd_layla24", "snd_mia", "snd_mona"}
	name := sharedImage(long)
	if !strings.HasPrefix(name, "firmware-snd_echo3g+9-more-") || len(name) > maxSharedName || name == sharedImage(long[:9]) {
		t.Errorf("abbreviated name %q", name)
	}
	if err := checkName("shared", name); err != nil {
		t.Error(err)
	}
}
