package prune

import (
	"errors"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"
)

// spikeFirmware is a small linux-firmware with the names the spike's Dockerfile keeps.
func spikeFirmware() map[string]any {
	return map[string]any{
		"/usr/lib/firmware/regulatory.db":                                  "db",
		"/usr/lib/firmware/regulatory.db.p7s":                              "sig",
		"/usr/lib/firmware/iwlwifi-ty-a0-gf-a0-59.ucode":                   "ucode59",
		"/usr/lib/firmware/iwlwifi-ty-a0-gf-a0.pnvm.xz":                    "pnvm",
		"/usr/lib/firmware/iwlwifi-cc-a0-77.ucode":                         "other-iwl",
		"/usr/lib/firmware/i915/adlp_dmc.bin":                              "dmc",
		"/usr/lib/firmware/i915/sub/guc.bin":                               "guc",
		"/usr/lib/firmware/mediatek/WIFI_MT7922_patch_mcu_1_1_hdr.bin.zst": "mt7922",
		"/usr/lib/firmware/mediatek/WIFI_MT7961_patch_mcu_1_2_hdr.bin":     "mt7961",
		"/usr/lib/firmware/mediatek/BT_RAM_CODE_MT7922_1_1_hdr.bin":        "bt7922",
		"/usr/lib/firmware/rtl_nic/rtl8168h-2.fw.zst":                      "rtl",
		"/usr/lib/firmware/amdgpu/navi10_sos.bin":                          "0123456789",
		"/usr/lib/firmware/empty-already":                                  &vfst.Dir{Perm: 0o755},
		"/usr/lib/os-release":                                              "not firmware",
	}
}

func TestPruneKeepsPatternsDirectoriesAndCompressedVariants(t *testing.T) {
	root := newRoot(t, spikeFirmware())
	before := listTree(t, root, "/usr/lib/firmware")
	res, err := Plan(Options{Root: root, Keep: []string{
		"regulatory*", "iwlwifi-ty-a0-gf-a0*", "./i915/", "mediatek/*MT7922*.bin", "rtl_nic/*.fw",
	}})
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "firmware_dir", res.FirmwareDir, "/usr/lib/firmware")
	assertEqual(t, "kept", res.Kept, []string{
		"i915/adlp_dmc.bin", "i915/sub/guc.bin",
		"iwlwifi-ty-a0-gf-a0-59.ucode", "iwlwifi-ty-a0-gf-a0.pnvm.xz",
		"mediatek/BT_RAM_CODE_MT7922_1_1_hdr.bin", "mediatek/WIFI_MT7922_patch_mcu_1_1_hdr.bin.zst",
		"regulatory.db", "regulatory.db.p7s",
		"rtl_nic/rtl8168h-2.fw.zst", // kept by its uncompressed name
	})
	assertEqual(t, "removed", removedPaths(res), []string{"amdgpu/navi10_sos.bin", "iwlwifi-cc-a0-77.ucode", "mediatek/WIFI_MT7961_patch_mcu_1_2_hdr.bin"})
	assertEqual(t, "removed dirs", res.RemovedDirs, []string{"empty-already", "amdgpu"})
	assertEqual(t, "bytes removed", res.BytesRemoved, int64(len("0123456789")+len("other-iwl")+len("mt7961")))
	assertEqual(t, "patterns", res.Patterns, []PatternResult{
		{"regulatory*", 2}, {"iwlwifi-ty-a0-gf-a0*", 2}, {"./i915/", 2}, {"mediatek/*MT7922*.bin", 2}, {"rtl_nic/*.fw", 1},
	})
	if !res.DryRun {
		t.Error("Plan must return a dry-run result")
	}
	assertEqual(t, "tree after Plan", listTree(t, root, "/usr/lib/firmware"), before)

	if err := Apply(root, res, nil); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "tree after Apply", listTree(t, root, "/usr/lib/firmware"), []string{
		"i915/", "i915/adlp_dmc.bin", "i915/sub/", "i915/sub/guc.bin",
		"iwlwifi-ty-a0-gf-a0-59.ucode", "iwlwifi-ty-a0-gf-a0.pnvm.xz",
		"mediatek/", "mediatek/BT_RAM_CODE_MT7922_1_1_hdr.bin", "mediatek/WIFI_MT7922_patch_mcu_1_1_hdr.bin.zst",
		"regulatory.db", "regulatory.db.p7s",
		"rtl_nic/", "rtl_nic/rtl8168h-2.fw.zst",
	})
	if res.DryRun {
		t.Error("an applied result must not say dry_run")
	}
	if _, err := root.FS.Stat("/usr/lib/os-release"); err != nil {
		t.Errorf("a file outside the firmware directory was touched: %v", err)
	}
}

func TestPruneUnmatchedPatternRemovesNothingAndNamesEveryProblem(t *testing.T) {
	root := newRoot(t, spikeFirmware())
	before := listTree(t, root, "/usr/lib/firmware")
	_, err := Plan(Options{Root: root, Keep: []string{"regulatory*", "nosuch*", "/usr/lib/firmware/i915", "empty-already", ""}})
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("Plan = %v, want Problems", err)
	}
	if len(problems) != 4 {
		t.Fatalf("problems %q: want one for each of nosuch*, the absolute pattern, the empty directory, the empty pattern", problems)
	}
	dir := root.Real("/usr/lib/firmware")
	for i, want := range []string{
		`--keep "nosuch*" matches no file in ` + dir,
		`--keep "/usr/lib/firmware/i915" matches no file in ` + dir + ` (patterns are relative to the firmware directory`,
		`--keep "empty-already" matches no file`, // a directory with nothing in it keeps nothing
		`--keep "": an empty pattern`,
	} {
		if !strings.HasPrefix(problems[i], want) {
			t.Errorf("problem %d = %q, want it to start %q", i, problems[i], want)
		}
	}
	assertEqual(t, "tree", listTree(t, root, "/usr/lib/firmware"), before)
}

func TestFirmwareDirectoryIsWhereLibFirmwareLeads(t *testing.T) {
	merged := newRoot(t, map[string]any{
		"/lib":                   &vfst.Symlink{Target: "usr/lib"},
		"/usr/lib/firmware/a.fw": "a",
	})
	if dir, err := findFirmwareDir(merged); err != nil || dir != "/usr/lib/firmware" {
		t.Errorf("merged /usr: %q, %v", dir, err)
	}
	split := newRoot(t, map[string]any{"/lib/firmware/a.fw": "a"})
	if dir, err := findFirmwareDir(split); err != nil || dir != "/lib/firmware" {
		t.Errorf("/lib/firmware only: %q, %v", dir, err)
	}
	// /lib/firmware as an absolute link is followed inside the root, not on the host.
	linked := newRoot(t, map[string]any{"/srv/fw/a.fw": "a", "/lib": &vfst.Dir{Perm: 0o755}})
	makeLink(t, linked, "/lib/firmware", "/srv/fw")
	if dir, err := findFirmwareDir(linked); err != nil || dir != "/srv/fw" {
		t.Errorf("/lib/firmware -> /srv/fw: %q, %v", dir, err)
	}
	both := newRoot(t, map[string]any{"/lib/firmware/a.fw": "a", "/usr/lib/firmware/b.fw": "b"})
	if _, err := findFirmwareDir(both); err == nil || !strings.Contains(err.Error(), "two different firmware directories") {
		t.Errorf("two firmware directories: %v", err)
	}
	none := newRoot(t, map[string]any{"/etc/hostname": "h"})
	if _, err := findFirmwareDir(none); err == nil || !strings.Contains(err.Error(), "no firmware directory under "+none.Dir) {
		t.Errorf("no firmware directory: %v", err)
	}
	toRoot := newRoot(t, map[string]any{"/lib": &vfst.Dir{Perm: 0o755}})
	makeLink(t, toRoot, "/lib/firmware", "/")
	if _, err := findFirmwareDir(toRoot); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("/lib/firmware -> /: %v", err)
	}
}
