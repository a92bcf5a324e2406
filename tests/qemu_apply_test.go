package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/stages/apply"
	"github.com/kairos-io/kairos-firmware/stages/report"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/qemu"
)

// kairosRoot builds the real root of the apply scenarios: a Debian-like system with the Kairos
// extension store, holding the image fw-kfwtest (erofs, AuroraBoot-style release: ID=_any,
// ARCHITECTURE, no SYSEXT_SCOPE) with both firmware files the kfwtest drivers want, enabled for
// the active boot. extra adds files (cloud-config, other images' trees) and images names more
// images to build from trees: name -> files.
func kairosRoot(t testing.TB, extra map[string]string, images map[string]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	tree := map[string]string{
		"etc/os-release":                      "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\nKAIROS_VERSION=v3.5.0\n",
		"usr/lib/firmware/README":             "the image's own firmware directory, a real directory (kairos#4290)\n",
		"usr/share/doc/README":                "x",
		"var/lib/kairos/extensions/.keep":     "",
		"var/lib/kairos/extensions/active/.k": "",
		"var/lib/kairos/extensions/common/.k": "",
		"oem/.keep":                           "",
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "sysroot"} {
		tree[d+"/.keep"] = ""
	}
	for p, c := range extra {
		tree[p] = c
	}
	imagetest.WriteTree(t, dir, tree)
	all := map[string]map[string]string{
		"fw-kfwtest": {"usr/lib/extension-release.d/extension-release.fw-kfwtest": "ID=_any\nARCHITECTURE=x86-64\n"},
	}
	for name, files := range images {
		all[name] = files
	}
	for name, files := range all {
		src := t.TempDir()
		imagetest.WriteTree(t, src, files)
		if name == "fw-kfwtest" {
			rigWriteFirmware(t, filepath.Join(src, "usr/lib/firmware", rigEduFirmware), rigEduSize)
			rigWriteFirmware(t, filepath.Join(src, "usr/lib/firmware", rigRtwFirmware), rigRtwSize)
		}
		imagetest.Erofs(t, filepath.Join(dir, "var/lib/kairos/extensions", name+".sysext.raw"), src, "-zlz4hc")
		// Enabled as kairos-agent sysext enable --active writes it: an absolute link.
		if err := os.Symlink("/var/lib/kairos/extensions/"+name+".sysext.raw", filepath.Join(dir, "var/lib/kairos/extensions/active", name+".sysext.raw")); err != nil {
			t.Fatal(err)
		}
	}
	return qemu.Disk(t, dir, "ext4")
}

func bootApply(t testing.TB, disk, append string) *qemu.Result {
	t.Helper()
	return qemu.Run(t, qemu.Boot{
		Scenario: filepath.Join("qemu", "scenarios", "apply.sh"),
		Files:    map[string]string{"/usr/bin/kairos-firmware": binary},
		Disks:    []string{disk},
		Append:   append,
	})
}

func guestReport(t testing.TB, r *qemu.Result, block string) *report.Report {
	t.Helper()
	if rc := r.Value(block + "-rc"); rc != "0" {
		t.Fatalf("%s exited %q\nstderr: %s", block, rc, r.Blocks[block+"-stderr"])
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(r.Blocks[block]), &rep); err != nil {
		t.Fatalf("%s: not a report: %v\n%s", block, err, r.Blocks[block])
	}
	return &rep
}

func firmwareSHA(size int) string {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestApplyBeforePivotAuto is scenario 1: both probes failed first with the spike's message;
// apply --sysroot /sysroot with auto only (no rule) selects the image, both devices are bound
// before switch_root, and after switch_root the firmware is visible under /usr/lib/firmware and
// the kernel still finds it.
func TestApplyBeforePivotAuto(t *testing.T) {
	r := bootApply(t, kairosRoot(t, nil, nil), "kfw.pivot")
	if r.ExitCode != 0 {
		t.Fatalf("scenario exit %d\n%s", r.ExitCode, r.Console)
	}
	for key, want := range map[string]string{
		"failed.edu-driver": "none", "failed.usb-intf-driver": "none",
		"applied.edu-driver": "kfwtest_edu", "applied.usb-intf-driver": "kfwtest_rtw",
		"pivot": "done", "post.root-os": "debian", "post.report": "present", "post.edu-driver": "kfwtest_edu",
	} {
		if got := r.Value(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	failedLines := strings.Join(r.Values["failed.kmsg"], "\n")
	for _, want := range []string{
		"kfwtest_edu " + r.Value("edu") + ": Direct firmware load for " + rigEduFirmware + " failed with error -2",
		"kfwtest_rtw " + r.Value("intf") + ": Direct firmware load for " + rigRtwFirmware + " failed with error -2",
	} {
		if !strings.Contains(failedLines, want) {
			t.Errorf("before apply the kernel log lacks the spike's failure %q:\n%s", want, failedLines)
		}
	}
	rep := guestReport(t, r, "apply")
	if rep.Sysroot != apply.DefaultSysroot || rep.BootState != "active" || len(rep.Errors) != 0 {
		t.Errorf("report: sysroot %q, boot state %q, errors %v", rep.Sysroot, rep.BootState, rep.Errors)
	}
	if len(rep.Images) != 1 || rep.Images[0].Name != "fw-kfwtest" || rep.Images[0].Outcome != report.ImageMerged {
		t.Errorf("images %+v", rep.Images)
	}
	bound := map[string]string{}
	for _, d := range rep.Devices {
		if d.Outcome == report.DeviceBound {
			bound[d.Device] = d.Driver + " by " + d.Method
		}
	}
	if bound[r.Value("edu")] != "kfwtest_edu by drivers_probe" || bound[r.Value("intf")] != "kfwtest_rtw by drivers_probe" {
		t.Errorf("devices %+v", rep.Devices)
	}
	bom := map[string]string{}
	for _, f := range rep.Firmware {
		bom[f.Name] = f.SHA256
	}
	if bom[rigEduFirmware] != firmwareSHA(rigEduSize) || bom[rigRtwFirmware] != firmwareSHA(rigRtwSize) {
		t.Errorf("bill of materials %+v", rep.Firmware)
	}
	loaded := strings.Join(r.Values["applied.kmsg"], "\n")
	for _, want := range []string{"firmware loaded: kfwtest/edu.bin (4242 bytes)", "firmware loaded: rtw88/rtw8821a_fw.bin (31337 bytes)"} {
		if !strings.Contains(loaded, want) {
			t.Errorf("after apply the kernel log lacks %q:\n%s", want, loaded)
		}
	}
	if logs := strings.Join(r.Values["applied.log"], "\n"); !strings.Contains(logs, "kairos-firmware: device "+r.Value("intf")) {
		t.Errorf("apply's lines are not in the kernel log:\n%s", logs)
	}
	// After the pivot.
	sizes := strings.Join(r.Values["post.usr-lib-firmware"], ",")
	if sizes != "kfwtest/edu.bin 4242,rtw88/rtw8821a_fw.bin 31337" {
		t.Errorf("/usr/lib/firmware after the pivot: %q", sizes)
	}
	if !strings.Contains(r.Value("post.marker"), "fw-kfwtest") {
		t.Errorf("the sysext marker after the pivot: %q", r.Value("post.marker"))
	}
	if !strings.HasPrefix(r.Value("post.fwpath"), "/run/kairos-firmware/") {
		t.Errorf("firmware_class.path after the pivot: %q", r.Value("post.fwpath"))
	}
	if !strings.Contains(strings.Join(r.Values["post.kmsg"], "\n"), "firmware loaded: kfwtest/edu.bin") {
		t.Errorf("after the pivot the kernel did not find the firmware again: %q", r.Values["post.kmsg"])
	}
	post := guestReport(t, r, "post-apply")
	if len(post.Errors) != 0 {
		t.Errorf("apply after the pivot: errors %v", post.Errors)
	}
}

// TestApplyExplicitRuleBrokenImageDryRunTwiceUnmerge is scenario 2: an explicit rule only
// (auto: false) with a broken image next to the good one; --dry-run changes nothing; apply run
// twice leaves the same mounts; unmerge removes them.
func TestApplyExplicitRuleBrokenImageDryRunTwiceUnmerge(t *testing.T) {
	disk := kairosRoot(t, map[string]string{
		"oem/90_firmware.yaml": "#cloud-config\nfirmware:\n  auto: false\n  extensions:\n    - name: fw-kfwtest\n      when:\n        - usb: \"2357:011e\"\n",
	}, map[string]map[string]string{
		"broken": {"usr/lib/firmware/x.bin": "no extension-release"},
	})
	r := bootApply(t, disk, "kfw.apply=dry-run,twice,unmerge")
	if r.ExitCode != 0 {
		t.Fatalf("scenario exit %d\n%s", r.ExitCode, r.Console)
	}
	// --dry-run: the plan, and nothing changed.
	dry := r.Blocks["dry-run"]
	for _, want := range []string{"select fw-kfwtest", "extensions[0].when[0] (usb 2357:011e)", "reject broken", "would mount"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, dry)
		}
	}
	for _, key := range []string{"mounts", "fwpath"} {
		if r.Value("after-dry-run."+key) != r.Value("before."+key) {
			t.Errorf("--dry-run changed %s: %q -> %q", key, r.Value("before."+key), r.Value("after-dry-run."+key))
		}
	}
	if r.Value("after-dry-run.edu-driver") != "none" || r.Value("after-dry-run.usb-intf-driver") != "none" {
		t.Errorf("--dry-run re-probed devices")
	}
	// apply: the rule selects the image, the broken one is reported, both devices come back
	// (the edu device's firmware is in the same image, now visible).
	rep := guestReport(t, r, "apply")
	outcome := map[string]string{}
	for _, img := range rep.Images {
		outcome[img.Name] = img.Outcome
	}
	if outcome["fw-kfwtest"] != report.ImageMerged || outcome["broken"] != report.ImageRejected {
		t.Errorf("images %+v", rep.Images)
	}
	if r.Value("applied.usb-intf-driver") != "kfwtest_rtw" || r.Value("applied.edu-driver") != "kfwtest_edu" {
		t.Errorf("after apply: edu %q, usb %q", r.Value("applied.edu-driver"), r.Value("applied.usb-intf-driver"))
	}
	// twice: the same mounts.
	if r.Value("applied.mounts") == "0" || r.Blocks["applied-again.mountinfo"] != r.Blocks["applied.mountinfo"] || r.Value("applied-again.fwpath") != r.Value("applied.fwpath") {
		t.Errorf("a second apply changed the mounts:\n%s\n---\n%s", r.Blocks["applied.mountinfo"], r.Blocks["applied-again.mountinfo"])
	}
	// unmerge: our mounts are gone.
	if r.Value("unmerge-rc") != "0" || r.Value("unmerged.mounts") != "0" {
		t.Errorf("unmerge: rc %q, %q mounts left:\n%s\n%s", r.Value("unmerge-rc"), r.Value("unmerged.mounts"), r.Blocks["unmerged.mountinfo"], r.Blocks["unmerge-stderr"])
	}
}

// TestApplyNeverReprobesTheRootDisk is scenario 3: a rule matches the virtio disk controller
// holding /sysroot and reprobe.mode is matched; the disk is skipped with the reason and stays
// bound.
func TestApplyNeverReprobesTheRootDisk(t *testing.T) {
	disk := kairosRoot(t, map[string]string{
		"oem/90_firmware.yaml": "#cloud-config\nfirmware:\n  extensions:\n    - name: fw-kfwtest\n      when:\n        - pci: \"1af4:*\"\n  reprobe:\n    mode: matched\n",
	}, nil)
	r := bootApply(t, disk, "")
	if r.ExitCode != 0 {
		t.Fatalf("scenario exit %d\n%s", r.ExitCode, r.Console)
	}
	rep := guestReport(t, r, "apply")
	var skipped []report.Device
	for _, d := range rep.Devices {
		if d.Bus == "pci" && d.Device != r.Value("edu") {
			skipped = append(skipped, d)
		}
	}
	if len(skipped) == 0 {
		t.Fatalf("the virtio disk was not a re-probe candidate: %+v", rep.Devices)
	}
	for _, d := range skipped {
		if d.Outcome != report.DeviceSkipped || !strings.Contains(d.Reason, "/sysroot") || d.Attempts != 0 {
			t.Errorf("virtio device %s: %s (%s), %d attempts", d.Device, d.Outcome, d.Reason, d.Attempts)
		}
	}
	if !strings.Contains(r.Kmsg, "virtio_blk") || strings.Contains(r.Kmsg, "virtio-pci "+skipped[0].Device+": unbind") {
		t.Logf("kernel log:\n%s", r.Kmsg)
	}
	if r.Value("applied.edu-driver") != "kfwtest_edu" {
		t.Errorf("edu after apply: %q", r.Value("applied.edu-driver"))
	}
}
