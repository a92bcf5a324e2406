package prune

import (
	"errors"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"
)

// kernelWithFirmware is a kernel 6.9.0 whose built-in fw-mod declares firmware (plain names, a
// wildcard as brcmfmac's, one missing, one climbing out) and whose built-in nofw declares none.
func kernelWithFirmware() map[string]any {
	fw := "/usr/lib/firmware/"
	return map[string]any{
		"/lib/modules/6.9.0/modules.builtin.modinfo": "fw_mod.firmware=acme/a.bin\x00fw_mod.firmware=acme/b.bin\x00" +
			"fw_mod.firmware=acme/missing.bin\x00fw_mod.firmware=brcm/brcmfmac*-sdio.*.bin\x00fw_mod.firmware=../escape.bin\x00" +
			"nofw.alias=pci:v00001234d*\x00",
		"/lib/modules/6.9.0/modules.dep":                         "",
		"/lib/modules/6.9.0/modules.alias":                       "",
		"/usr/lib/escape.bin":                                    "outside",
		fw + "acme/a.bin":                                        "plain",
		fw + "acme/a.bin.zst":                                    "zst",
		fw + "acme/a.bin.xz":                                     "xz",
		fw + "acme/c.bin":                                        "not declared",
		fw + "updates/6.9.0/acme/a.bin":                          "update for this kernel",
		fw + "updates/acme/b.bin.xz":                             "update",
		fw + "6.9.0/acme/b.bin":                                  "for this kernel",
		fw + "brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.bin": "board",
		fw + "brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt": "nvram",
		fw + "brcm/brcmfmac43455-sdio.bin":                       "generic",
	}
}

func TestPruneKeepsEveryVariantOfDeclaredFirmware(t *testing.T) {
	root := newRoot(t, kernelWithFirmware())
	res, err := Plan(Options{Root: root, KeepModules: []string{"fw-mod", "nofw"}})
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "kernel release", res.KernelRelease, "6.9.0") // the only one installed
	assertEqual(t, "kept", res.Kept, []string{
		"6.9.0/acme/b.bin", "acme/a.bin", "acme/a.bin.xz", "acme/a.bin.zst",
		"brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.bin", "updates/6.9.0/acme/a.bin", "updates/acme/b.bin.xz",
	})
	assertEqual(t, "removed", removedPaths(res), []string{
		"acme/c.bin", "brcm/brcmfmac43455-sdio.bin", "brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt",
	})
	assertEqual(t, "modules", res.Modules, []ModuleResult{
		{
			Module:   "fw-mod",
			Firmware: []string{"acme/a.bin", "acme/b.bin", "acme/missing.bin", "brcm/brcmfmac*-sdio.*.bin", "../escape.bin"},
			Missing:  []string{"acme/missing.bin", "../escape.bin"},
			Kept:     7,
		},
		{Module: "nofw", Firmware: []string{}, Missing: []string{}, Kept: 0},
	})
	warnings := strings.Join(res.Warnings, "\n")
	for _, want := range []string{
		"--keep-module fw-mod: declared firmware acme/missing.bin is not in " + root.Real("/usr/lib/firmware") + " (it was never there)",
		"--keep-module fw-mod: declared firmware ../escape.bin is not in",
		"--keep-module nofw declares no firmware: it keeps nothing",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if err := Apply(root, res, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := root.FS.Stat("/usr/lib/escape.bin"); err != nil {
		t.Errorf("a declared name climbing out of the firmware directory reached %s: %v", root.Real("/usr/lib/escape.bin"), err)
	}
}

func TestPruneUnknownModuleRemovesNothing(t *testing.T) {
	root := newRoot(t, kernelWithFirmware())
	before := listTree(t, root, "/usr/lib/firmware")
	_, err := Plan(Options{Root: root, KeepModules: []string{"fw_mod", "nosuch"}, Keep: []string{"nomatch"}})
	var problems Problems
	if !errors.As(err, &problems) || len(problems) != 2 {
		t.Fatalf("Plan = %v, want two problems", err)
	}
	assertEqual(t, "problems", []string(problems), []string{
		`--keep "nomatch" matches no file in ` + root.Real("/usr/lib/firmware"),
		`--keep-module "nosuch": kernel 6.9.0 has no such module (neither in ` + root.Real("/lib/modules/6.9.0") + `/modules.dep nor built in)`,
	})
	assertEqual(t, "tree", listTree(t, root, "/usr/lib/firmware"), before)
}

func TestPruneNeedsOneKernelForModules(t *testing.T) {
	tree := kernelWithFirmware()
	tree["/usr/lib/modules/6.10.0"] = &vfst.Dir{Perm: 0o755}
	root := newRoot(t, tree)
	_, err := Plan(Options{Root: root, KeepModules: []string{"fw_mod"}})
	if err == nil || !strings.Contains(err.Error(), "hold several kernels (6.10.0, 6.9.0): choose one with --kernel-release") {
		t.Errorf("two kernels, no --kernel-release: %v", err)
	}
	if res, err := Plan(Options{Root: root, KeepModules: []string{"fw_mod"}, KernelRelease: "6.9.0"}); err != nil || len(res.Kept) != 7 {
		t.Errorf("with --kernel-release 6.9.0: %v", err)
	}
	if _, err := Plan(Options{Root: root, KeepModules: []string{"fw_mod"}, KernelRelease: "5.0.0"}); err == nil || !strings.Contains(err.Error(), `--kernel-release "5.0.0"`) {
		t.Errorf("an absent --kernel-release: %v", err)
	}
	// Without --keep-module the kernel does not matter.
	if _, err := Plan(Options{Root: root, Keep: []string{"acme"}}); err != nil {
		t.Errorf("--keep alone with two kernels: %v", err)
	}

	bare := newRoot(t, map[string]any{"/usr/lib/firmware/a.bin": "a"})
	if _, err := Plan(Options{Root: bare, KeepModules: []string{"fw_mod"}}); err == nil || !strings.Contains(err.Error(), "--keep-module needs a kernel") {
		t.Errorf("no kernel: %v", err)
	}
}
