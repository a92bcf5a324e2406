package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/qemu"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// Firmware sizes the rig's disk carries; the drivers log them once the load succeeds.
const (
	rigEduFirmware = "kfwtest/edu.bin"
	rigEduSize     = 4242
	rigRtwFirmware = "rtw88/rtw8821a_fw.bin"
	rigRtwSize     = 31337
)

// rigDetectDevice is the part of `kairos-firmware detect --json` these tests rely on.
type rigDetectDevice struct {
	Bus            string   `json:"bus"`
	ID             string   `json:"id"`
	Driver         string   `json:"driver"`
	Modules        []string `json:"modules"`
	Firmware       []string `json:"firmware"`
	FirmwareFailed []string `json:"firmware_failed"`
	Status         string   `json:"status"`
}

func rigDetect(t *testing.T, r *qemu.Result, block string) map[string]rigDetectDevice {
	t.Helper()
	if rc := r.Value(block + "-rc"); rc != "0" {
		t.Fatalf("%s: kairos-firmware detect exited %q\nstderr: %s", block, rc, r.Blocks[block+"-stderr"])
	}
	var inv struct {
		Devices []rigDetectDevice `json:"devices"`
	}
	if err := json.Unmarshal([]byte(r.Blocks[block]), &inv); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", block, err, r.Blocks[block])
	}
	devs := map[string]rigDetectDevice{}
	for _, d := range inv.Devices {
		devs[d.ID] = d
	}
	return devs
}

// TestRigReproducesSpikeFailure boots Debian's kernel with the kfwtest drivers and no firmware:
// both probes fail like the spike's rtw_8821au (scenarios/spike-failure.sh), detect reports
// both devices as failed-firmware, and once the firmware is visible drivers_probe binds both.
func TestRigReproducesSpikeFailure(t *testing.T) {
	fw := t.TempDir()
	rigWriteFirmware(t, filepath.Join(fw, "lib", "firmware", rigEduFirmware), rigEduSize)
	rigWriteFirmware(t, filepath.Join(fw, "lib", "firmware", rigRtwFirmware), rigRtwSize)
	r := qemu.Run(t, qemu.Boot{
		Scenario: filepath.Join(testkernel.RepoRoot(), "tests", "qemu", "scenarios", "spike-failure.sh"),
		Files:    map[string]string{"/usr/bin/kairos-firmware": binary},
		Disks:    []string{qemu.Disk(t, fw, "erofs")},
	})
	if r.ExitCode != 0 {
		t.Fatalf("scenario exited %d", r.ExitCode)
	}
	edu, usb := r.Value("edu"), r.Value("usb")
	intf := usb + ":1.0"
	if !regexp.MustCompile(`^0000:00:[0-9a-f]{2}\.0$`).MatchString(edu) {
		t.Fatalf("edu PCI address = %q", edu)
	}
	if !regexp.MustCompile(`^[0-9]+-1$`).MatchString(usb) {
		t.Fatalf("USB dongle = %q, want the first port of dummy_hcd's bus", usb)
	}
	want := func(key, value string) {
		t.Helper()
		if got := r.Value(key); got != value {
			t.Errorf("%s = %q, want %q", key, got, value)
		}
	}
	want("usb-intf-class", "ff")
	want("fallback", "0")

	// 1. The spike's failure, in sysfs and in the kernel log.
	want("failed.edu-driver", "none")
	want("failed.usb-driver", "usb")
	want("failed.usb-intf-driver", "none")
	for _, line := range []string{
		"kfwtest_edu " + edu + ": Direct firmware load for " + rigEduFirmware + " failed with error -2",
		"kfwtest_edu: probe of " + edu + " failed with error -2",
		"kfwtest_rtw " + intf + ": Direct firmware load for " + rigRtwFirmware + " failed with error -2",
		"kfwtest_rtw: probe of " + intf + " failed with error -22",
	} {
		if !slices.Contains(r.Values["failed.kmsg"], line) {
			t.Errorf("kernel log lacks %q; it has:\n%s", line, strings.Join(r.Values["failed.kmsg"], "\n"))
		}
	}
	devs := rigDetect(t, r, "detect-failed")
	for _, c := range []struct{ id, bus, firmware string }{{edu, "pci", rigEduFirmware}, {intf, "usb", rigRtwFirmware}} {
		d, ok := devs[c.id]
		switch {
		case !ok:
			t.Errorf("detect does not list %s", c.id)
		case d.Bus != c.bus || d.Status != "failed-firmware" || d.Driver != "" ||
			!slices.Equal(d.FirmwareFailed, []string{c.firmware}) ||
			!slices.Contains(d.Modules, "kfwtest") || !slices.Contains(d.Firmware, c.firmware):
			t.Errorf("detect before the re-probe: %+v; want bus %s, status failed-firmware, no driver, "+
				"module kfwtest, firmware_failed [%s]", d, c.bus, c.firmware)
		}
	}
	if d := devs[usb]; d.Status != "bound" || d.Driver != "usb" {
		t.Errorf("detect: the USB device itself: %+v; want bound to usb", d)
	}

	// 2. An "add" uevent is not a re-probe.
	want("uevent.edu-driver", "none")
	want("uevent.usb-intf-driver", "none")

	// 3 and 4. With the firmware visible, drivers_probe binds both.
	want("mount-rc", "0")
	want("reprobe.edu-rc", "0")
	want("reprobe.usb-rc", "0")
	want("reprobe.edu-driver", "kfwtest_edu")
	want("reprobe.usb-driver", "usb")
	want("reprobe.usb-intf-driver", "kfwtest_rtw")
	eduLoaded := fmt.Sprintf("kfwtest_edu %s: firmware loaded: %s (%d bytes)", edu, rigEduFirmware, rigEduSize)
	rtwLoaded := fmt.Sprintf("kfwtest_rtw %s: firmware loaded: %s (%d bytes)", intf, rigRtwFirmware, rigRtwSize)
	eduFailed := "kfwtest_edu " + edu + ": Direct firmware load for"
	for _, order := range [][2]string{{eduFailed, eduLoaded}, {"kfwtest_rtw " + intf + ": Direct firmware load for", rtwLoaded}} {
		failed, loaded := strings.Index(r.Kmsg, order[0]), strings.Index(r.Kmsg, order[1])
		if failed < 0 || loaded < failed {
			t.Errorf("kernel log: want %q after %q; its kfwtest lines:\n%s", order[1], order[0], rigGrep(r.Kmsg, "kfwtest"))
		}
	}
	devs = rigDetect(t, r, "detect-reprobed")
	for id, driver := range map[string]string{edu: "kfwtest_edu", intf: "kfwtest_rtw"} {
		if d := devs[id]; d.Status != "bound" || d.Driver != driver {
			t.Errorf("detect after the re-probe: %s: %+v; want bound to %s", id, d, driver)
		}
	}

	// 5. The spike's unbind/bind of the USB device deletes its interfaces and probes them again.
	want("unbound.usb-driver", "none")
	want("unbound.usb-intf-driver", "absent")
	want("rebound.usb-driver", "usb")
	want("rebound.usb-intf-driver", "kfwtest_rtw")
	if n := strings.Count(r.Kmsg, rtwLoaded); n != 2 {
		t.Errorf("kernel log has %q %d times, want 2 (drivers_probe, then bind)", rtwLoaded, n)
	}
}

// rigGrep returns the lines of s that contain substr.
func rigGrep(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// rigWriteFirmware writes a firmware file of size bytes with a recognizable pattern.
func rigWriteFirmware(t testing.TB, path string, size int) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
