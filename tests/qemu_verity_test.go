package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
	"github.com/kairos-io/kairos-firmware/manifests/verity"
	"github.com/kairos-io/kairos-firmware/stages/report"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/qemu"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// signedDDI builds dst as AuroraBoot's sysext output is built: systemd-repart with an erofs
// root partition (Verity=data), its root-verity hash partition and a root-verity-sig partition
// signed with key and cert. The partition types name x86-64, the guest's architecture.
func signedDDI(t *testing.T, dst string, files map[string]string, key, cert string) {
	t.Helper()
	repart := testkernel.Tool(t, "systemd-repart")
	dir := t.TempDir()
	src := filepath.Join(dir, "tree")
	imagetest.WriteTree(t, src, files)
	fs := filepath.Join(dir, "root.erofs")
	imagetest.Erofs(t, fs, src) // uncompressed: the test finds a file's bytes in the partition
	defs := filepath.Join(dir, "repart.d")
	for name, conf := range map[string]string{
		"10-root.conf":            "Type=root-x86-64\nCopyBlocks=" + fs + "\nVerity=data\nVerityMatchKey=root\n",
		"20-root-verity.conf":     "Type=root-x86-64-verity\nVerity=hash\nVerityMatchKey=root\n",
		"30-root-verity-sig.conf": "Type=root-x86-64-verity-sig\nVerity=signature\nVerityMatchKey=root\n",
	} {
		imagetest.WriteTree(t, defs, map[string]string{name: "[Partition]\n" + conf})
	}
	cmd := exec.Command(repart, "--definitions="+defs, "--empty=create", "--size=auto", "--dry-run=no",
		"--pretty=no", "--no-pager", "--private-key="+key, "--certificate="+cert, dst)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-repart: %v\n%s", err, out)
	}
}

// ddiParts returns the data and hash partitions of a DDI and its hash tree's parameters.
func ddiParts(t *testing.T, file string) (data, hash gpt.Partition, p *verity.Params) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, err := gpt.Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	parts, err := table.Sysext("x86-64")
	if err != nil {
		t.Fatal(err)
	}
	if parts.Root == nil || parts.RootVerity == nil || parts.RootVeritySig == nil {
		t.Fatalf("%s: partitions %+v", file, parts)
	}
	if p, err = verity.ReadSuperblock(table.Section(parts.RootVerity)); err != nil {
		t.Fatal(err)
	}
	return *parts.Root, *parts.RootVerity, p
}

// markOffset returns where tamperMark starts in the DDI file's data partition, in bytes from
// the start of the file; the mark must be there once.
func markOffset(t *testing.T, file string) int64 {
	t.Helper()
	data, _, _ := ddiParts(t, file)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	part := raw[data.Offset : data.Offset+data.Size]
	at := bytes.Index(part, []byte(tamperMark))
	if at < 0 || bytes.Count(part, []byte(tamperMark)) != 1 {
		t.Fatalf("%s: the marked firmware file's bytes are not once in the data partition (at %d)", file, at)
	}
	return data.Offset + int64(at)
}

// writeTemp writes content to a new temporary file and returns its path.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "content")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// flipByte inverts one byte of file at offset, recomputing nothing.
func flipByte(t *testing.T, file string, offset int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, offset); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatal(err)
	}
}

// tamperMark starts the content of the firmware files the test changes, so it can find them
// in an erofs data partition.
const tamperMark = "KFW-TAMPERED-FIRMWARE-MARK"

// TestApplyMountsDDIsThroughDMVerity boots once with four signed DDIs in the store under
// firmware.signatures: required:
//
//   - fw-kfwtest is mounted through a read-only dm-verity device named
//     kairos-firmware-fw-kfwtest over two loop devices, one on its data partition and one on
//     its hash partition (offsets and sizes of the GPT), and both kfwtest devices bind;
//   - fw-tree-tampered (a byte of its hash tree flipped) is rejected at plan time with the
//     integrity reason, and nothing of it is attached or mounted;
//   - fw-meta-tampered (a byte of erofs' superblock flipped inside the data partition) is
//     rejected at plan time: the plan reads a DDI through its verified hash tree;
//   - fw-data-tampered (a byte flipped near the end of a firmware file, a block the plan never
//     reads, nothing recomputed) is rejected too: every data block of a selected DDI is hashed
//     before the merge (plan.DecideVerified), and nothing of it is attached or mounted;
//   - a byte of fw-kfwtest's late.bin changed in the store after the merge (what the check
//     before the merge cannot see) is refused by the kernel: reading the file fails with EIO
//     and dm-verity logs the block on fw-kfwtest's data device;
//   - device-mapper was not loaded: apply creates /dev/mapper/control and the kernel loads
//     dm-mod, then dm-verity;
//   - unmerge removes the dm device and its loop devices free themselves.
func TestApplyMountsDDIsThroughDMVerity(t *testing.T) {
	key, cert := gpttest.KeyPair(t)
	dir := t.TempDir()
	tree := map[string]string{
		"etc/os-release":                      "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\nKAIROS_VERSION=v3.5.0\n",
		"usr/lib/firmware/README":             "the image's own firmware directory, a real directory (kairos#4290)\n",
		"var/lib/kairos/extensions/active/.k": "",
		"var/lib/kairos/extensions/common/.k": "",
		"oem/90_firmware.yaml": "#cloud-config\nfirmware:\n  signatures: required\n  extensions:\n" +
			"    - name: fw-tree-tampered\n      when:\n        - pci: \"1234:11e8\"\n" +
			"    - name: fw-data-tampered\n      when:\n        - pci: \"1234:11e8\"\n",
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "sysroot"} {
		tree[d+"/.keep"] = ""
	}
	imagetest.WriteTree(t, dir, tree)
	store := filepath.Join(dir, "var/lib/kairos/extensions")
	release := func(name string) map[string]string {
		return map[string]string{"usr/lib/extension-release.d/extension-release." + name: "ID=_any\nARCHITECTURE=x86-64\n"}
	}
	image := func(name string) string { return filepath.Join(store, name+".sysext.raw") }

	good := release("fw-kfwtest")
	src := t.TempDir()
	rigWriteFirmware(t, filepath.Join(src, rigEduFirmware), rigEduSize)
	rigWriteFirmware(t, filepath.Join(src, rigRtwFirmware), rigRtwSize)
	for _, fw := range []string{rigEduFirmware, rigRtwFirmware} {
		data, err := os.ReadFile(filepath.Join(src, fw))
		if err != nil {
			t.Fatal(err)
		}
		good["usr/lib/firmware/"+fw] = string(data)
	}
	late := tamperMark + strings.Repeat("0123456789abcdef", 1024)
	good["usr/lib/firmware/kfwtest/late.bin"] = late
	signedDDI(t, image("fw-kfwtest"), good, key, cert)
	// Where the scenario changes late.bin after the merge: near its end, a hex digit becomes
	// an 'X'.
	lateAt := markOffset(t, image("fw-kfwtest")) + int64(len(late)) - 100

	treeFiles := release("fw-tree-tampered")
	treeFiles["usr/lib/firmware/kfwtest/tree.bin"] = "a firmware whose image has a changed hash tree"
	signedDDI(t, image("fw-tree-tampered"), treeFiles, key, cert)
	_, hash, params := ddiParts(t, image("fw-tree-tampered"))
	flipByte(t, image("fw-tree-tampered"), hash.Offset+params.HashOffset+7) // the tree's top block

	content := tamperMark + strings.Repeat("0123456789abcdef", 1024)
	dataFiles := release("fw-data-tampered")
	dataFiles["usr/lib/firmware/kfwtest/tampered.bin"] = content
	signedDDI(t, image("fw-data-tampered"), dataFiles, key, cert)
	// Near the file's end: a block the plan never reads through the tree.
	flipByte(t, image("fw-data-tampered"), markOffset(t, image("fw-data-tampered"))+int64(len(content))-100)

	// A changed block the plan does read (erofs' superblock, at 1024): rejected before merging.
	metaFiles := release("fw-meta-tampered")
	metaFiles["usr/lib/firmware/kfwtest/meta.bin"] = "a firmware whose image has a changed superblock"
	signedDDI(t, image("fw-meta-tampered"), metaFiles, key, cert)
	meta, _, _ := ddiParts(t, image("fw-meta-tampered"))
	flipByte(t, image("fw-meta-tampered"), meta.Offset+1024+40)

	for _, name := range []string{"fw-kfwtest", "fw-tree-tampered", "fw-data-tampered", "fw-meta-tampered"} {
		if err := os.Symlink("/var/lib/kairos/extensions/"+name+".sysext.raw", filepath.Join(store, "active", name+".sysext.raw")); err != nil {
			t.Fatal(err)
		}
	}
	goodData, goodHash, _ := ddiParts(t, image("fw-kfwtest"))
	disk := qemu.Disk(t, dir, "ext4")

	r := qemu.Run(t, qemu.Boot{
		Scenario: filepath.Join("qemu", "scenarios", "verity.sh"),
		Files: map[string]string{"/usr/bin/kairos-firmware": binary, "/kfw/verity/db.crt": cert,
			"/kfw/verity/late-offset": writeTemp(t, fmt.Sprint(lateAt))},
		Disks: []string{disk},
	})
	if r.ExitCode != 0 {
		t.Fatalf("scenario exit %d\n%s", r.ExitCode, r.Console)
	}
	rep := guestReport(t, r, "apply")

	// The plan: the good image admitted, the tampered ones rejected for their integrity, under
	// the signature policy, before anything of them is attached.
	outcome := map[string]report.Image{}
	for _, img := range rep.Images {
		outcome[img.Name] = img
	}
	if img := outcome["fw-kfwtest"]; img.Outcome != report.ImageMerged {
		t.Errorf("fw-kfwtest: %+v", img)
	}
	if img := outcome["fw-tree-tampered"]; img.Outcome != report.ImageRejected ||
		!strings.Contains(img.Reason, "refused by signatures: required on a non-UKI boot: the image fails its integrity check") {
		t.Errorf("fw-tree-tampered: %+v", img)
	}
	if img := outcome["fw-data-tampered"]; img.Outcome != report.ImageRejected || !strings.Contains(img.Reason, "integrity: partition ") ||
		!strings.Contains(img.Reason, "is corrupt: hash tree says") {
		t.Errorf("fw-data-tampered (every data block of a selected DDI is hashed before the merge): %+v", img)
	}
	if img := outcome["fw-meta-tampered"]; img.Outcome != report.ImageRejected || !strings.Contains(img.Reason, "is corrupt: hash tree says") {
		t.Errorf("fw-meta-tampered (a block the plan reads through the verity tree): %+v", img)
	}

	// Before: device-mapper not loaded. After: its control node, and the verity target.
	for key, want := range map[string]string{
		"failed.edu-driver": "none", "failed.usb-intf-driver": "none",
		"before.dm-control": "absent", "before.dm-mod": "absent",
		"applied.dm-control": "present", "applied.dm-verity": "present",
		"applied.edu-driver": "kfwtest_edu", "applied.usb-intf-driver": "kfwtest_rtw",
		"applied.good-read": fmt.Sprint(rigEduSize),
	} {
		if got := r.Value(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	// The dm devices, read from sysfs: name, read-only, and the loop devices under each.
	dmRE := regexp.MustCompile(`^(dm-\d+) (\S+) ro=(\d) (\d+:\d+) slaves=(loop\d+) (loop\d+) $`)
	devs := map[string][]string{} // name -> dm-N, maj:min, loops
	for _, line := range r.Values["applied.dm"] {
		m := dmRE.FindStringSubmatch(line)
		if m == nil || m[3] != "1" {
			t.Errorf("dm device %q: want dm-N NAME ro=1 MAJ:MIN slaves=loopA loopB", line)
			continue
		}
		devs[m[2]] = m[1:]
	}
	if len(devs) != 1 || devs["kairos-firmware-fw-kfwtest"] == nil {
		t.Fatalf("dm devices %q, want kairos-firmware-fw-kfwtest alone", r.Values["applied.dm"])
	}
	// Each image's loop devices: its data partition and its hash partition, read-only.
	// loops[dm name][window] is the loop device's major:minor.
	loops := map[string]map[string]string{}
	for _, line := range r.Values["applied.slave"] {
		f := strings.Fields(line)
		if len(f) != 7 {
			t.Errorf("slave %q", line)
			continue
		}
		for name, d := range devs {
			if d[0] == f[0] {
				if loops[name] == nil {
					loops[name] = map[string]string{}
				}
				loops[name][strings.Join(f[3:], " ")] = f[2]
			}
		}
	}
	window := func(img string, p gpt.Partition) string {
		return fmt.Sprintf("/sysroot/var/lib/kairos/extensions/%s.sysext.raw %d %d ro=1", img, p.Offset, p.Size)
	}
	for _, w := range []string{window("fw-kfwtest", goodData), window("fw-kfwtest", goodHash)} {
		if loops["kairos-firmware-fw-kfwtest"][w] == "" {
			t.Errorf("no loop device %q under kairos-firmware-fw-kfwtest: %q", w, r.Values["applied.slave"])
		}
	}
	goodDataLoop := loops["kairos-firmware-fw-kfwtest"][window("fw-kfwtest", goodData)]
	// The images are mounted from the dm devices, not from loop devices.
	mounts := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.Blocks["applied.mountinfo"]), "\n") {
		if f := strings.Fields(line); len(f) == 4 {
			mounts[f[1]] = f[0] + " " + f[2] + " " + f[3]
		}
	}
	for name, img := range map[string]string{"kairos-firmware-fw-kfwtest": "fw-kfwtest"} {
		d := devs[name]
		if got, want := mounts["/run/kairos-firmware/images/"+img], d[3]+" erofs /dev/"+d[0]; got != want {
			t.Errorf("mount of %s: %q, want %q (mountinfo:\n%s)", img, got, want, r.Blocks["applied.mountinfo"])
		}
	}
	if len(mounts) != 1 {
		t.Errorf("image mounts:\n%s", r.Blocks["applied.mountinfo"])
	}

	// The changed block: the read fails, and the kernel says why.
	if got := r.Value("changed.late-read"); !strings.HasPrefix(got, "failed: ") || !strings.Contains(got, "Input/output error") {
		t.Errorf("reading the tampered file through dm-verity: %q", got)
	}
	// dm-verity names the data device as the table gives it: major:minor of the loop device.
	kmsg := strings.Join(r.Values["applied.kmsg"], "\n")
	corrupted := regexp.MustCompile(`device-mapper: verity: (\d+:\d+): data block \d+ is corrupted`)
	var where []string
	for _, m := range corrupted.FindAllStringSubmatch(kmsg, -1) {
		where = append(where, m[1])
	}
	if len(where) == 0 || goodDataLoop == "" || strings.Join(where, " ") != strings.TrimSpace(strings.Repeat(goodDataLoop+" ", len(where))) {
		t.Errorf("dm-verity's corruption reports name %q, want only fw-kfwtest's data device %q:\n%s", where, goodDataLoop, kmsg)
	}

	// Unmerge: no mount, no dm device, no loop device on the store.
	if r.Value("unmerge-rc") != "0" || r.Value("unmerged.dm-count") != "0" || r.Value("unmerged.mounts") != "0" {
		t.Errorf("after unmerge: rc %q, %q dm devices %q, %q mounts\n%s", r.Value("unmerge-rc"), r.Value("unmerged.dm-count"),
			r.Values["unmerged.dm"], r.Value("unmerged.mounts"), r.Blocks["unmerge-stderr"])
	}
	if loops := r.Values["unmerged.loop"]; len(loops) != 0 {
		t.Errorf("loop devices still attached after unmerge: %q", loops)
	}
}
