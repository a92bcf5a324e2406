package plan

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/manifests"
)

func image(name string, firmware ...string) *manifests.Image {
	img := &manifests.Image{Name: name, Path: "/var/lib/kairos/extensions/" + name + ".sysext.raw"}
	for _, f := range firmware {
		ff := manifests.FirmwareFile{Name: f, Path: "usr/lib/firmware/" + f}
		if n, ok := strings.CutSuffix(f, ".zst"); ok {
			ff.Name, ff.Compression = n, "zstd"
		}
		img.Firmware = append(img.Firmware, ff)
	}
	return img
}

// spikeDevices: the spike's adapter (its interface failed), a bnx2 NIC bound without its
// firmware being on the system, and an unrelated bound device.
func spikeDevices() []*hwmatch.Device {
	return []*hwmatch.Device{
		{Bus: "pci", ID: "0000:01:00.0", Vendor: "14e4", Product: "1639", Class: "020000", Driver: "bnx2",
			Modalias: "pci:v000014E4d00001639sv00001028sd00000236bc02sc00i00",
			Modules:  []string{"bnx2"}, Firmware: []string{"bnx2/bnx2-mips-09-6.2.1b.fw", "bnx2/bnx2-rv2p-09-6.0.17.fw"},
			Drivers: []string{"bnx2"}, Needs: []string{"bnx2/bnx2-mips-09-6.2.1b.fw", "bnx2/bnx2-rv2p-09-6.0.17.fw"},
			FirmwareFailed: []string{}, Status: hwmatch.StatusBound},
		{Bus: "pci", ID: "0000:00:02.0", Vendor: "8086", Product: "100e", Class: "020000", Driver: "e1000",
			Modules: []string{"e1000"}, Firmware: []string{}, Drivers: []string{"e1000"}, Needs: []string{}, FirmwareFailed: []string{}, Status: hwmatch.StatusBound},
		{Bus: "usb", ID: "1-4", Vendor: "2357", Product: "011e", Class: "000000", Driver: "usb",
			Modules: []string{}, Firmware: []string{}, FirmwareFailed: []string{}, Status: hwmatch.StatusBound},
		{Bus: "usb", ID: "1-4:1.0", Vendor: "2357", Product: "011e", Class: "ffffff",
			Modalias: "usb:v2357p011Ed0200dc00dsc00dp00icFFiscFFipFFin00", Parent: "1-4",
			Modules: []string{"rtw88_8821au"}, Firmware: []string{"rtw88/rtw8821a_fw.bin"},
			Drivers: []string{"rtw88_8821au"}, Needs: []string{"rtw88/rtw8821a_fw.bin"},
			FirmwareFailed: []string{"rtw88/rtw8821a_fw.bin"}, ProbeFailed: true, ProbeError: -22,
			Status: hwmatch.StatusFailedFirmware},
	}
}

func spikeImages() []*manifests.Image {
	return []*manifests.Image{
		image("linux-firmware", "rtw88/rtw8821a_fw.bin", "bnx2/bnx2-mips-09-6.2.1b.fw", "iwlwifi-ty-a0-gf-a0-77.ucode", "i915/tgl_dmc.bin"),
		image("linux-firmware-realtek", "rtw88/rtw8821a_fw.bin", "rtw88/rtw8822c_fw.bin"),
		image("linux-firmware-broadcom", "bnx2/bnx2-mips-09-6.2.1b.fw", "bnx2/bnx2-rv2p-09-6.0.17.fw", "bnx2/bnx2-mips-06-6.2.3.fw"),
	}
}

func nothingPresent(string) string { return "" }

func TestAutoSelectsTheMostSpecificImageForTheSpikeFailure(t *testing.T) {
	p := Decide(Input{Devices: spikeDevices(), Config: config.Defaults(), Images: spikeImages(), Present: nothingPresent})
	want := []Selection{
		{Name: "linux-firmware-broadcom", Path: "/var/lib/kairos/extensions/linux-firmware-broadcom.sysext.raw", Reasons: []Reason{
			{Device: "0000:01:00.0", Rule: "auto: declared by bnx2, missing", Firmware: []string{"bnx2/bnx2-mips-09-6.2.1b.fw", "bnx2/bnx2-rv2p-09-6.0.17.fw"}},
		}},
		{Name: "linux-firmware-realtek", Path: "/var/lib/kairos/extensions/linux-firmware-realtek.sysext.raw", Reasons: []Reason{
			{Device: "1-4:1.0", Rule: "auto: declared by rtw88_8821au, missing", Firmware: []string{"rtw88/rtw8821a_fw.bin"}},
			{Device: "1-4:1.0", Rule: "auto: failed to load in the kernel log", Firmware: []string{"rtw88/rtw8821a_fw.bin"}},
		}},
	}
	if !reflect.DeepEqual(p.Selected, want) {
		t.Errorf("selected:\n got %s\nwant %s", js(p.Selected), js(want))
	}
	wantReprobe := []Reprobe{{Device: "1-4:1.0", Bus: "usb", Method: MethodDriversProbe, Fallbacks: []string{MethodUSBReenumerate},
		Why: "rtw88/rtw8821a_fw.bin failed to load; a selected image provides it"}}
	if !reflect.DeepEqual(p.Reprobe, wantReprobe) {
		t.Errorf("reprobe:\n got %s\nwant %s", js(p.Reprobe), js(wantReprobe))
	}
	if len(p.Unresolved) != 0 {
		t.Errorf("unresolved: %v", p.Unresolved)
	}
}

func TestExplicitRuleOnly(t *testing.T) {
	cfg := config.Defaults()
	cfg.Auto = false
	cfg.Extensions = []config.Extension{
		{Name: "linux-firmware", When: []config.Match{{PCI: &config.IDPattern{Vendor: "8086", Product: "*"}, Class: "0280"}, {USB: &config.IDPattern{Vendor: "2357", Product: "011e"}}}},
		{Name: "not-in-any-store"},
		{Name: "linux-firmware-broadcom", When: []config.Match{{DMI: map[string]string{"sys_vendor": "Dell*"}}}},
	}
	p := Decide(Input{Devices: spikeDevices(), Config: cfg, Images: spikeImages(), Present: nothingPresent,
		DMI: map[string]string{"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R710"}})
	got := map[string][]Reason{}
	for _, s := range p.Selected {
		got[s.Name] = s.Reasons
	}
	want := map[string][]Reason{
		// Both the USB device and its interface carry 2357:011e; the interface is where the
		// failed firmware is.
		"linux-firmware": {
			{Device: "1-4", Rule: "extensions[0].when[1] (usb 2357:011e)", Firmware: []string{}},
			{Device: "1-4:1.0", Rule: "extensions[0].when[1] (usb 2357:011e)", Firmware: []string{"rtw88/rtw8821a_fw.bin"}},
		},
		"linux-firmware-broadcom": {{Device: "", Rule: "extensions[2].when[0] (dmi sys_vendor=Dell*)", Firmware: []string{}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("selected:\n got %s\nwant %s", js(got), js(want))
	}
	if !reflect.DeepEqual(p.Unresolved, []string{`extensions[1]: no usable image named "not-in-any-store" in the stores`}) {
		t.Errorf("unresolved: %q", p.Unresolved)
	}
	if len(p.Reprobe) != 1 || p.Reprobe[0].Device != "1-4:1.0" {
		t.Errorf("the explicitly selected image provides the failed firmware: reprobe %s", js(p.Reprobe))
	}
}

func TestFirmwareAlreadyOnTheSystemSelectsNothing(t *testing.T) {
	present := func(name string) string { return "/lib/firmware/" + name }
	p := Decide(Input{Devices: spikeDevices(), Config: config.Defaults(), Images: spikeImages(), Present: present})
	if len(p.Selected) != 0 {
		t.Errorf("selected %s although every firmware is present", js(p.Selected))
	}
	// The failure predates the file: a re-probe alone brings the device back.
	if len(p.Reprobe) != 1 || !strings.Contains(p.Reprobe[0].Why, "the system has it now at /lib/firmware/rtw88/rtw8821a_fw.bin") {
		t.Errorf("reprobe %s", js(p.Reprobe))
	}
}

func TestCompressedFirmwareTheKernelCannotRead(t *testing.T) {
	images := []*manifests.Image{image("zstd-only", "rtw88/rtw8821a_fw.bin.zst")}
	noZstd := func(suffix string) bool { return suffix != ".zst" }
	p := Decide(Input{Devices: spikeDevices(), Config: config.Defaults(), Images: images, Present: nothingPresent, Supports: noZstd})
	if len(p.Selected) != 0 {
		t.Errorf("a .zst-only image was selected for a kernel without zstd firmware support: %s", js(p.Selected))
	}
	if !reflect.DeepEqual(p.Unresolved, []string{"1-4:1.0: rtw88/rtw8821a_fw.bin failed to load and no image provides it"}) {
		t.Errorf("unresolved %q", p.Unresolved)
	}
	p = Decide(Input{Devices: spikeDevices(), Config: config.Defaults(), Images: images, Present: nothingPresent})
	if len(p.Selected) != 1 {
		t.Errorf("with zstd support the image provides it: %s", js(p.Selected))
	}
}

func TestReprobeModes(t *testing.T) {
	cfg := config.Defaults()
	cfg.Reprobe.Mode = config.ReprobeMatched
	p := Decide(Input{Devices: spikeDevices(), Config: cfg, Images: spikeImages(), Present: nothingPresent})
	var got []string
	for _, r := range p.Reprobe {
		got = append(got, r.Device+" "+r.Method)
	}
	if want := []string{"0000:01:00.0 rebind", "1-4:1.0 drivers_probe"}; !reflect.DeepEqual(got, want) {
		t.Errorf("matched mode: %v, want %v", got, want)
	}
	cfg.Reprobe.Exclude = []string{"1-4:1.0"}
	if p := Decide(Input{Devices: spikeDevices(), Config: cfg, Images: spikeImages(), Present: nothingPresent}); len(p.Reprobe) != 1 || p.Reprobe[0].Device != "0000:01:00.0" {
		t.Errorf("exclude: %s", js(p.Reprobe))
	}
	cfg.Reprobe.Mode = config.ReprobeOff
	if p := Decide(Input{Devices: spikeDevices(), Config: cfg, Images: spikeImages(), Present: nothingPresent}); len(p.Reprobe) != 0 {
		t.Errorf("off: %s", js(p.Reprobe))
	}
}

func TestRejectedAndConfigErrorsAreCarried(t *testing.T) {
	p := Decide(Input{
		Devices:      spikeDevices(),
		ConfigErrors: []config.Error{{File: "/oem/90_firmware.yaml", Line: 3, Column: 9, Key: "firmware.auto", Value: "maybe", Message: "not a boolean"}},
		Rejected:     []manifests.Rejected{{Name: "broken", Path: "/var/lib/kairos/extensions/broken.raw", Reason: "no extension-release"}},
		Images:       spikeImages(), Present: nothingPresent,
	})
	if len(p.Rejected) != 1 || p.Rejected[0].Reason != "no extension-release" || len(p.ConfigErrors) != 1 {
		t.Errorf("plan lost the rejected image or the config error: %s", js(p))
	}
	if len(p.Selected) == 0 {
		t.Errorf("with config errors the defaults (auto) still apply")
	}
}

func TestDeterministic(t *testing.T) {
	first := js(Decide(Input{Devices: spikeDevices(), Config: config.Defaults(), Images: spikeImages(), Present: nothingPresent}))
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		images := spikeImages()
		r.Shuffle(len(images), func(a, b int) { images[a], images[b] = images[b], images[a] })
		if got := js(Decide(Input{Devices: spikeDevices(), Config: config.Defaults(), Images: images, Present: nothingPresent})); got != first {
			t.Fatalf("image order changed the plan:\n%s\n%s", got, first)
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestFailedDeviceIsReprobedWhenAnImageSelectedForAnotherProvidesItsFirmware: once visible,
// firmware is there for every driver; the device whose load failed must be re-probed even if
// the image was selected by a rule about another device.
func TestFailedDeviceIsReprobedWhenAnImageSelectedForAnotherProvidesItsFirmware(t *testing.T) {
	cfg := config.Defaults()
	cfg.Auto = false
	cfg.Extensions = []config.Extension{{Name: "linux-firmware", When: []config.Match{{PCI: &config.IDPattern{Vendor: "14e4", Product: "*"}}}}}
	p := Decide(Input{Devices: spikeDevices(), Config: cfg, Images: spikeImages(), Present: nothingPresent})
	if len(p.Reprobe) != 1 || p.Reprobe[0].Device != "1-4:1.0" {
		t.Errorf("reprobe %s, want the USB interface whose firmware the selected image provides", js(p.Reprobe))
	}
}
