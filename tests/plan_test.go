package tests

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
	"github.com/kairos-io/kairos-firmware/stages/plan"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

const release = "ID=_any\nARCHITECTURE=x86-64\n"

// extensionTree is the source tree of a firmware sysext named name holding the given files
// under usr/lib/firmware.
func extensionTree(t *testing.T, name string, firmware ...string) string {
	t.Helper()
	files := map[string]string{"usr/lib/extension-release.d/extension-release." + name: release}
	for _, f := range firmware {
		files["usr/lib/firmware/"+f] = "firmware " + f
	}
	dir := t.TempDir()
	imagetest.WriteTree(t, dir, files)
	return dir
}

// spikeOnRecordedMachine is a real recorded machine (a Dell server with Broadcom bnx2 NICs) with
// Debian's kernel metadata, the spike's USB WLAN adapter plugged in, its failure in the kernel
// log, and a Kairos store (active boot) holding per-driver images in three formats, a catch-all
// image and a broken one.
func spikeOnRecordedMachine(t *testing.T) (root, kmsg string) {
	t.Helper()
	var snap string
	for _, s := range ghwSnapshots(t) {
		if strings.Contains(s, "8581cf3a") {
			snap = s
		}
	}
	root = unpackMachine(t, snap)
	usb := filepath.Join(root, "sys/devices/pci0000:00/0000:00:1d.7/usb1")
	imagetest.WriteTree(t, root, map[string]string{
		"sys/bus/usb/devices/usb1":    "->../../../devices/pci0000:00/0000:00:1d.7/usb1",
		"sys/bus/usb/devices/1-4":     "->../../../devices/pci0000:00/0000:00:1d.7/usb1/1-4",
		"sys/bus/usb/devices/1-4:1.0": "->../../../devices/pci0000:00/0000:00:1d.7/usb1/1-4/1-4:1.0",
		"run/cos/active_mode":         "",
		// A Kairos system's os-release is its base distribution's, with Kairos' fields added.
		"etc/os-release": "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nKAIROS_VERSION=v3.5.0\n",
	})
	for dir, attrs := range map[string]map[string]string{
		usb:          {"idVendor": "1d6b", "idProduct": "0002", "bDeviceClass": "09", "bDeviceSubClass": "00", "bDeviceProtocol": "00"},
		usb + "/1-4": {"idVendor": "2357", "idProduct": "011e", "bDeviceClass": "00", "bDeviceSubClass": "00", "bDeviceProtocol": "00"},
		usb + "/1-4/1-4:1.0": {"bInterfaceClass": "ff", "bInterfaceSubClass": "ff", "bInterfaceProtocol": "ff",
			"modalias": "usb:v2357p011Ed0200dc00dsc00dp00icFFiscFFipFFin00"},
	} {
		for name, value := range attrs {
			imagetest.WriteTree(t, dir, map[string]string{name: value + "\n"})
		}
	}
	// The spike's kernel log, as journalctl -k printed it.
	kmsg = filepath.Join(t.TempDir(), "kmsg.txt")
	if err := os.WriteFile(kmsg, []byte(`Sep 04 09:19:13 localhost kernel: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2
Sep 04 09:19:13 localhost kernel: rtw_8821au 1-4:1.0: failed to request firmware
Sep 04 09:19:13 localhost kernel: rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22
`), 0o644); err != nil {
		t.Fatal(err)
	}

	store := filepath.Join(root, plan.StoreRoot)
	for _, d := range []string{"active", "passive", "common"} {
		if err := os.MkdirAll(filepath.Join(store, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	imagetest.Erofs(t, filepath.Join(store, "fw-realtek.sysext.raw"), extensionTree(t, "fw-realtek", "rtw88/rtw8821a_fw.bin", "rtw88/rtw8822c_fw.bin"), "-zlz4hc")
	imagetest.Squashfs(t, filepath.Join(store, "fw-broadcom.sysext.raw"), extensionTree(t, "fw-broadcom",
		"bnx2/bnx2-mips-09-6.2.1b.fw", "bnx2/bnx2-rv2p-09-6.0.17.fw", "bnx2/bnx2-rv2p-09ax-6.0.17.fw", "bnx2/bnx2-mips-06-6.2.3.fw", "bnx2/bnx2-rv2p-06-6.0.15.fw"), "xz")
	imagetest.Erofs(t, filepath.Join(store, "linux-firmware.sysext.raw"), extensionTree(t, "linux-firmware",
		"rtw88/rtw8821a_fw.bin", "bnx2/bnx2-mips-09-6.2.1b.fw", "i915/tgl_dmc.bin", "iwlwifi-ty-a0-gf-a0-77.ucode", "amdgpu/navi10_sos.bin", "rtl_nic/rtl8168h-2.fw"))
	// Broken: no extension-release.
	broken := t.TempDir()
	imagetest.WriteTree(t, broken, map[string]string{"usr/lib/firmware/x.bin": "x"})
	imagetest.Erofs(t, filepath.Join(store, "broken.sysext.raw"), broken)
	// Enable links as kairos-agent sysext writes them: absolute paths of the running system.
	for link, target := range map[string]string{
		"active/fw-realtek.sysext.raw":     "fw-realtek.sysext.raw",
		"active/broken.sysext.raw":         "broken.sysext.raw",
		"common/fw-broadcom.sysext.raw":    "fw-broadcom.sysext.raw",
		"common/linux-firmware.sysext.raw": "linux-firmware.sysext.raw",
		// Enabled for passive only: not seen on an active boot.
		"passive/fw-realtek-old.sysext.raw": "fw-realtek.sysext.raw",
	} {
		if err := os.Symlink(filepath.Join(plan.StoreRoot, target), filepath.Join(store, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, kmsg
}

// TestPlanSelectsTheSpikesImageOnARecordedMachine: the spike's failure must select the image
// that provides rtw88/rtw8821a_fw.bin — the per-driver one over the catch-all — with the
// reason, and the interface must be re-probed; the NICs' missing firmware selects the Broadcom
// image; the broken image is rejected with its reason while the rest of the plan happens.
func TestPlanSelectsTheSpikesImageOnARecordedMachine(t *testing.T) {
	testkernel.Dir(t)
	root, kmsg := spikeOnRecordedMachine(t)
	var p plan.Plan
	runJSON(t, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")

	if p.BootState != plan.StateActive {
		t.Errorf("boot state %q", p.BootState)
	}
	wantStores := []string{"/var/lib/kairos/extensions/active", "/var/lib/kairos/extensions/common", "/run/extensions"}
	if !reflect.DeepEqual(p.Stores, wantStores) {
		t.Errorf("stores %v, want %v", p.Stores, wantStores)
	}
	selected := map[string]plan.Selection{}
	for _, s := range p.Selected {
		selected[s.Name] = s
	}
	realtek, ok := selected["fw-realtek"]
	if !ok || realtek.Path != "/var/lib/kairos/extensions/active/fw-realtek.sysext.raw" {
		t.Fatalf("fw-realtek not selected (or wrong path): %+v", p.Selected)
	}
	wantReason := plan.Reason{Device: "1-4:1.0", Rule: "auto: failed to load in the kernel log", Firmware: []string{"rtw88/rtw8821a_fw.bin"}}
	if !reflect.DeepEqual(realtek.Reasons, []plan.Reason{wantReason}) {
		t.Errorf("fw-realtek reasons %+v, want %+v", realtek.Reasons, wantReason)
	}
	broadcom := selected["fw-broadcom"]
	var nics []string
	for _, r := range broadcom.Reasons {
		nics = append(nics, r.Device)
		if r.Rule != "auto: declared by bnx2, missing" || len(r.Firmware) != 5 {
			t.Errorf("fw-broadcom reason %+v", r)
		}
	}
	if want := []string{"0000:01:00.0", "0000:01:00.1", "0000:02:00.0", "0000:02:00.1"}; !reflect.DeepEqual(nics, want) {
		t.Errorf("fw-broadcom selected for %v, want the four bnx2 NICs %v", nics, want)
	}
	if _, ok := selected["linux-firmware"]; ok {
		t.Errorf("the catch-all image was selected although per-driver images provide everything: %+v", selected["linux-firmware"])
	}
	if len(p.Rejected) != 1 || p.Rejected[0].Name != "broken" || !strings.Contains(p.Rejected[0].Reason, "extension-release") {
		t.Errorf("rejected %+v, want broken (no extension-release)", p.Rejected)
	}
	want := []plan.Reprobe{{Device: "1-4:1.0", Bus: "usb", Method: plan.MethodDriversProbe, Fallbacks: []string{plan.MethodUSBReenumerate},
		Why: "rtw88/rtw8821a_fw.bin failed to load; a selected image provides it"}}
	if !reflect.DeepEqual(p.Reprobe, want) {
		t.Errorf("reprobe %+v, want %+v", p.Reprobe, want)
	}

	// The same inputs give the same plan, byte for byte, and the human output explains it.
	first, _, _ := runCLI(t, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")
	second, _, _ := runCLI(t, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")
	if first != second {
		t.Errorf("two runs gave different plans")
	}
	human, _, code := runCLI(t, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg)
	for _, line := range []string{
		"select fw-realtek (/var/lib/kairos/extensions/active/fw-realtek.sysext.raw): device 1-4:1.0 needs rtw88/rtw8821a_fw.bin (auto: failed to load in the kernel log)\n",
		"reject broken (/var/lib/kairos/extensions/active/broken.sysext.raw): ",
		"reprobe 1-4:1.0 (usb) by drivers_probe, then usb-reenumerate: rtw88/rtw8821a_fw.bin failed to load; a selected image provides it\n",
	} {
		if code != 0 || !strings.Contains(human, line) {
			t.Errorf("human plan lacks %q:\n%s", line, human)
		}
	}
}

// TestPlanExplicitRuleAndBadConfig: an explicit rule alone (auto off) selects its image; an
// invalid configuration is reported and the defaults apply.
func TestPlanExplicitRuleAndBadConfig(t *testing.T) {
	testkernel.Dir(t)
	root, kmsg := spikeOnRecordedMachine(t)
	imagetest.WriteTree(t, root, map[string]string{"oem/90_firmware.yaml": "#cloud-config\nfirmware:\n  auto: false\n  extensions:\n    - name: linux-firmware\n      when:\n        - usb: \"2357:011e\"\n"})
	var p plan.Plan
	runJSON(t, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")
	if len(p.Selected) != 1 || p.Selected[0].Name != "linux-firmware" || p.Config.Auto {
		t.Fatalf("explicit rule only: selected %+v (auto %v)", p.Selected, p.Config.Auto)
	}
	if got := p.Selected[0].Reasons; len(got) != 2 || got[1].Device != "1-4:1.0" || got[1].Rule != "extensions[0].when[0] (usb 2357:011e)" {
		t.Errorf("reasons %+v", got)
	}

	imagetest.WriteTree(t, root, map[string]string{"oem/91_broken.yaml": "#cloud-config\nfirmware:\n  reprobe:\n    mode: sometimes\n"})
	runJSON(t, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")
	if len(p.ConfigErrors) != 1 || p.ConfigErrors[0].File != "/oem/91_broken.yaml" || p.ConfigErrors[0].Line != 4 || !p.Config.Auto {
		t.Errorf("config errors %+v, auto %v: the error must be reported and the defaults apply", p.ConfigErrors, p.Config.Auto)
	}
}

// TestPlanAdmitsImagesAsSystemdAndThePolicyWould: images systemd-sysext would refuse for this
// system, and images the signature policy refuses, are rejected with the field that decided.
func TestPlanAdmitsImagesAsSystemdAndThePolicyWould(t *testing.T) {
	testkernel.Dir(t)
	root, kmsg := spikeOnRecordedMachine(t)
	store := filepath.Join(root, plan.StoreRoot)
	for name, rel := range map[string]string{
		"fw-arm":      "ID=_any\nARCHITECTURE=arm64\n",
		"fw-portable": "ID=_any\nARCHITECTURE=x86-64\nSYSEXT_SCOPE=portable\n",
		"fw-fedora":   "ID=fedora\nARCHITECTURE=x86-64\n",
	} {
		dir := t.TempDir()
		imagetest.WriteTree(t, dir, map[string]string{"usr/lib/extension-release.d/extension-release." + name: rel, "usr/lib/firmware/rtw88/rtw8821a_fw.bin": "x"})
		imagetest.Erofs(t, filepath.Join(store, name+".sysext.raw"), dir)
		if err := os.Symlink(filepath.Join(plan.StoreRoot, name+".sysext.raw"), filepath.Join(store, "common", name+".sysext.raw")); err != nil {
			t.Fatal(err)
		}
	}
	var p plan.Plan
	runJSON(t, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")
	reasons := map[string]string{}
	for _, r := range p.Rejected {
		reasons[r.Name] = r.Reason
	}
	for name, want := range map[string]string{
		"fw-arm":      `ARCHITECTURE: extension "arm64" does not match host "x86-64"`,
		"fw-portable": "SYSEXT_SCOPE",
		"fw-fedora":   `ID: extension "fedora" does not match host "ubuntu"`,
	} {
		if !strings.Contains(reasons[name], want) {
			t.Errorf("%s: rejected with %q, want it to contain %q", name, reasons[name], want)
		}
	}

	// signatures: required refuses the unsigned raw images; nothing is left to select.
	cfg := filepath.Join(t.TempDir(), "signed.yaml")
	if err := os.WriteFile(cfg, []byte("#cloud-config\nfirmware:\n  signatures: required\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runJSON(t, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--config", cfg, "--json")
	if len(p.Selected) != 0 {
		t.Errorf("signatures: required selected unsigned images: %+v", p.Selected)
	}
	for _, r := range p.Rejected {
		if r.Name == "fw-realtek" && !strings.Contains(r.Reason, "refused by signatures: required") {
			t.Errorf("fw-realtek rejected with %q", r.Reason)
		}
	}
}

// TestPlanVerifiesSignedDDIsWithConfiguredCertificates: under signatures: required, a signed
// verity DDI made by split is admitted only when its certificate is in a configured
// firmware.certificates directory of the target root; the unsigned raw images stay rejected.
func TestPlanVerifiesSignedDDIsWithConfiguredCertificates(t *testing.T) {
	modules := filepath.Join(testkernel.Dir(t), "lib", "modules", testkernel.Release)
	root, kmsg := spikeOnRecordedMachine(t)
	fw := t.TempDir()
	imagetest.WriteTree(t, fw, map[string]string{"rtw88/rtw8821a_fw.bin": "rtw firmware"})
	key, cert := gpttest.KeyPair(t)
	out := t.TempDir() + "/out"
	if _, stderr, code := runCLI(t, "split", "--firmware", fw, "--modules", modules, "--out", out, "--format", "ddi",
		"--sign-key", key, "--sign-cert", cert); code != 0 {
		t.Fatalf("split: exit %d\n%s", code, stderr)
	}
	ddi := "linux-firmware-other.raw" // no Debian 6.1 module declares the file: the catch-all
	store := filepath.Join(root, plan.StoreRoot)
	data, err := os.ReadFile(filepath.Join(out, ddi))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, ddi), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(plan.StoreRoot, ddi), filepath.Join(store, "active", ddi)); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "signed.yaml")
	if err := os.WriteFile(cfg, []byte("#cloud-config\nfirmware:\n  signatures: required\n  certificates: [/oem/verity.d]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	selected := func() (map[string]bool, map[string]string) {
		var p plan.Plan
		runJSON(t, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--config", cfg, "--json")
		sel, rej := map[string]bool{}, map[string]string{}
		for _, s := range p.Selected {
			sel[s.Name] = true
		}
		for _, r := range p.Rejected {
			rej[r.Name] = r.Reason
		}
		return sel, rej
	}
	// Without the certificate the signature cannot be verified.
	sel, rej := selected()
	if sel["linux-firmware-other"] || !strings.Contains(rej["linux-firmware-other"], "signature") {
		t.Errorf("without its certificate: selected %v, rejected %q", sel, rej["linux-firmware-other"])
	}
	certPEM, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.WriteTree(t, root, map[string]string{"oem/verity.d/split.crt": string(certPEM)})
	sel, rej = selected()
	if !sel["linux-firmware-other"] || sel["fw-realtek"] || !strings.Contains(rej["fw-realtek"], "refused by signatures: required") {
		t.Errorf("with its certificate: selected %v, rejected %v", sel, rej)
	}
}

// TestPlanRejectsDDIWithChangedFirmwareBlock: a byte changed inside a firmware file of a verity
// DDI is in a block the plan never reads through the hash tree; the plan still rejects the
// image, naming the block, and decides again without it, so the other image providing the
// firmware takes its place.
func TestPlanRejectsDDIWithChangedFirmwareBlock(t *testing.T) {
	modules := filepath.Join(testkernel.Dir(t), "lib", "modules", testkernel.Release)
	root, kmsg := spikeOnRecordedMachine(t)
	fw := t.TempDir()
	firmware := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{1}).Read(firmware)
	imagetest.WriteTree(t, fw, map[string]string{"rtw88/rtw8821a_fw.bin": string(firmware)})
	out := t.TempDir() + "/out"
	if _, stderr, code := runCLI(t, "split", "--firmware", fw, "--modules", modules, "--out", out, "--format", "ddi"); code != 0 {
		t.Fatalf("split: exit %d\n%s", code, stderr)
	}
	const name = "linux-firmware-other"
	image := filepath.Join(root, plan.StoreRoot, name+".raw")
	data, err := os.ReadFile(filepath.Join(out, name+".raw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(plan.StoreRoot, name+".raw"), filepath.Join(root, plan.StoreRoot, "active", name+".raw")); err != nil {
		t.Fatal(err)
	}
	decide := func() plan.Plan {
		var p plan.Plan
		runJSON(t, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")
		return p
	}
	selected := func(p plan.Plan, name string) bool {
		return slices.ContainsFunc(p.Selected, func(s plan.Selection) bool { return s.Name == name })
	}
	if p := decide(); !selected(p, name) {
		t.Fatalf("intact image not selected: %+v, rejected %+v", p.Selected, p.Rejected)
	}

	// The firmware is stored as it is (random bytes do not compress): change one byte of it in
	// the middle of the file, well away from every block the plan reads.
	at := bytes.Index(data, firmware[128<<10:(128<<10)+64])
	if at < 0 {
		t.Fatal("the firmware's bytes are not stored as they are in the image")
	}
	data[at] ^= 0x40
	if err := os.WriteFile(image, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := decide()
	if selected(p, name) {
		t.Fatalf("image with a changed firmware block selected: %+v", p.Selected)
	}
	i := slices.IndexFunc(p.Rejected, func(r plan.Rejection) bool { return r.Name == name })
	if i < 0 || !strings.Contains(p.Rejected[i].Reason, "integrity: partition ") || !strings.Contains(p.Rejected[i].Reason, "is corrupt: hash tree says") {
		t.Fatalf("rejected: %+v", p.Rejected)
	}
	if !selected(p, "fw-realtek") {
		t.Errorf("the other image providing rtw88/rtw8821a_fw.bin was not selected in its place: %+v", p.Selected)
	}
}
