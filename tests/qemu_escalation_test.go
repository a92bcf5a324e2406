package tests

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/stages/plan"
	"github.com/kairos-io/kairos-firmware/stages/report"
	"github.com/kairos-io/kairos-firmware/tests/qemu"
)

// escalationConfig pins the re-probe settings the escalation relies on: two attempts are needed
// (drivers_probe, then the bus's fallback), and the wait of a failed attempt ends at the
// kernel's "probe ... failed" line, well before the timeout.
const escalationConfig = "#cloud-config\nfirmware:\n  reprobe:\n    attempts: 3\n    timeout: 10s\n"

// bootEscalation boots scenarios/escalation.sh with kfwtest's module parameters params
// (kfw.kfwtest=...) on the apply scenarios' real root.
func bootEscalation(t *testing.T, params string) *qemu.Result {
	t.Helper()
	disk := kairosRoot(t, map[string]string{"oem/90_firmware.yaml": escalationConfig}, nil)
	r := qemu.Run(t, qemu.Boot{
		Scenario: filepath.Join("qemu", "scenarios", "escalation.sh"),
		Files:    map[string]string{"/usr/bin/kairos-firmware": binary},
		Disks:    []string{disk},
		Append:   "kfw.kfwtest=" + params,
	})
	if r.ExitCode != 0 {
		t.Fatalf("scenario exit %d\n%s", r.ExitCode, r.Console)
	}
	return r
}

// escalationPlan returns, by device, the escalation apply --dry-run printed for it: "rebind,
// then pci-rescan" from "reprobe 0000:00:02.0 (pci) by rebind, then pci-rescan: <why>".
func escalationPlan(t *testing.T, r *qemu.Result) map[string]string {
	t.Helper()
	if rc := r.Value("dry-run-rc"); rc != "0" {
		t.Fatalf("apply --dry-run exited %q\nstderr: %s", rc, r.Blocks["dry-run-stderr"])
	}
	out := map[string]string{}
	for _, line := range strings.Split(r.Blocks["dry-run"], "\n") {
		rest, ok := strings.CutPrefix(line, "reprobe ")
		if !ok {
			continue
		}
		dev, rest, _ := strings.Cut(rest, " ")
		_, rest, _ = strings.Cut(rest, ") by ")
		methods, _, _ := strings.Cut(rest, ": ")
		out[dev] = methods
	}
	return out
}

// escalationDevices returns apply's report devices by device, checking that the report apply
// printed is the one it wrote to /run/kairos-firmware/report.json.
func escalationDevices(t *testing.T, r *qemu.Result) map[string]report.Device {
	t.Helper()
	rep := guestReport(t, r, "apply")
	written := guestReport(t, r, "report")
	if len(rep.Errors) != 0 || len(rep.Images) != 1 || rep.Images[0].Outcome != report.ImageMerged {
		t.Errorf("report: errors %v, images %+v", rep.Errors, rep.Images)
	}
	out := map[string]report.Device{}
	for _, d := range rep.Devices {
		out[d.Device] = d
	}
	if !slices.EqualFunc(rep.Devices, written.Devices, func(a, b report.Device) bool {
		return a.Device == b.Device && a.Outcome == b.Outcome && a.Method == b.Method && slices.Equal(a.Tried, b.Tried) && a.Attempts == b.Attempts
	}) {
		t.Errorf("report.json's devices %+v differ from apply's output %+v", written.Devices, rep.Devices)
	}
	return out
}

// escalationValues checks the scenario's KFW-RESULT facts.
func escalationValues(t *testing.T, r *qemu.Result, want map[string]string) {
	t.Helper()
	for key, value := range want {
		if got := r.Value(key); got != value {
			t.Errorf("%s = %q, want %q", key, got, value)
		}
	}
}

// escalationLines checks that each line is among lines (the scenario's kernel log lines of a phase).
func escalationLines(t *testing.T, what string, lines []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, strings.Join(lines, "\n"))
		}
	}
}

// TestReprobeEscalation proves on Debian's 6.1 kernel the re-probe methods beyond
// drivers_probe (scenarios/escalation.sh, kfwtest's degraded and sticky parameters):
//
//   - degraded: a driver bound without its firmware is re-probed by rebind (unbind, then
//     drivers_probe) and comes back with it;
//   - sticky: hardware that only a reset clears, where drivers_probe fails on the same struct
//     device, escalates to usb-reenumerate for the USB interface and to pci-rescan for the PCI
//     device, which create new struct devices that probe with the firmware.
func TestReprobeEscalation(t *testing.T) {
	t.Run("degraded-rebind", func(t *testing.T) {
		r := bootEscalation(t, "degraded=1")
		edu, intf := r.Value("edu"), r.Value("intf")
		escalationValues(t, r, map[string]string{
			"param.degraded": "Y", "param.sticky": "N",
			// Bound at boot, without the firmware; the USB interface failed as usual.
			"failed.edu-driver": "kfwtest_edu", "failed.edu-fw_loaded": "0",
			"failed.usb-intf-driver": "none",
			// After apply: the same driver, now with its firmware.
			"applied.edu-driver": "kfwtest_edu", "applied.edu-fw_loaded": "1",
			"applied.usb-intf-driver": "kfwtest_rtw", "applied.usb-intf-fw_loaded": "1",
		})
		failed := r.Values["failed.kmsg"]
		escalationLines(t, "the boot's kernel log", failed,
			"kfwtest_edu "+edu+": Direct firmware load for "+rigEduFirmware+" failed with error -2",
			"kfwtest_edu "+edu+": degraded: running without firmware "+rigEduFirmware)
		for _, line := range failed {
			if strings.Contains(line, "probe of "+edu+" failed") {
				t.Errorf("the degraded device's probe failed at boot: %q", line)
			}
		}

		// The plan: rebind first for the bound device whose firmware failed.
		p := escalationPlan(t, r)
		if p[edu] != "rebind, then pci-rescan" || p[intf] != "drivers_probe, then usb-reenumerate" {
			t.Errorf("plan: %s by %q, %s by %q; want rebind then pci-rescan, drivers_probe then usb-reenumerate\n%s",
				edu, p[edu], intf, p[intf], r.Blocks["dry-run"])
		}

		devs := escalationDevices(t, r)
		if d := devs[edu]; d.Outcome != report.DeviceBound || d.Method != plan.MethodRebind || d.Attempts != 1 ||
			d.Driver != "kfwtest_edu" || len(d.FirmwareFailed) != 0 {
			t.Errorf("report for %s: %+v, want bound to kfwtest_edu by rebind in 1 attempt", edu, d)
		}
		if d := devs[intf]; d.Outcome != report.DeviceBound || d.Method != plan.MethodDriversProbe || d.Attempts != 1 {
			t.Errorf("report for %s: %+v, want bound by drivers_probe", intf, d)
		}
		escalationLines(t, "the kernel log during apply", r.Values["applied.kmsg"],
			"kfwtest_edu "+edu+": firmware loaded: "+rigEduFirmware+" (4242 bytes)",
			"kfwtest_rtw "+intf+": firmware loaded: "+rigRtwFirmware+" (31337 bytes)")
		// rebind keeps the struct device: the same sysfs directory.
		if r.Value("applied.edu-ino") != r.Value("failed.edu-ino") {
			t.Errorf("rebind re-created %s: sysfs inode %s -> %s", edu, r.Value("failed.edu-ino"), r.Value("applied.edu-ino"))
		}
	})

	t.Run("sticky-reenumerate-rescan", func(t *testing.T) {
		r := bootEscalation(t, "sticky=1")
		edu, intf := r.Value("edu"), r.Value("intf")
		escalationValues(t, r, map[string]string{
			"param.degraded": "N", "param.sticky": "Y",
			"failed.edu-driver": "none", "failed.usb-intf-driver": "none",
			"applied.edu-driver": "kfwtest_edu", "applied.edu-fw_loaded": "1",
			"applied.usb-intf-driver": "kfwtest_rtw", "applied.usb-intf-fw_loaded": "1",
		})
		escalationLines(t, "the boot's kernel log", r.Values["failed.kmsg"],
			"kfwtest_edu: probe of "+edu+" failed with error -2",
			"kfwtest_rtw: probe of "+intf+" failed with error -22")

		p := escalationPlan(t, r)
		if p[edu] != "drivers_probe, then pci-rescan" || p[intf] != "drivers_probe, then usb-reenumerate" {
			t.Errorf("plan: %s by %q, %s by %q; want drivers_probe then pci-rescan, drivers_probe then usb-reenumerate\n%s",
				edu, p[edu], intf, p[intf], r.Blocks["dry-run"])
		}

		// The report: drivers_probe tried first and refused (-EIO), then the fallback bound it.
		devs := escalationDevices(t, r)
		for dev, want := range map[string][2]string{edu: {plan.MethodPCIRescan, "kfwtest_edu"}, intf: {plan.MethodUSBReenumerate, "kfwtest_rtw"}} {
			d := devs[dev]
			if d.Outcome != report.DeviceBound || d.Method != want[0] || d.Attempts != 2 || d.Driver != want[1] || len(d.FirmwareFailed) != 0 ||
				!slices.Equal(d.Tried, []string{plan.MethodDriversProbe, want[0]}) {
				t.Errorf("report for %s: %+v, want bound to %s by drivers_probe then %s", dev, d, want[1], want[0])
			}
			if !strings.Contains(d.Reason, "(before: drivers_probe: probe with driver "+want[1]+" failed with error -5") {
				t.Errorf("report for %s: reason %q does not say why drivers_probe failed", dev, d.Reason)
			}
		}
		// The kernel's side: the first attempt (drivers_probe) probed the same struct device,
		// which refused with -EIO and requested no firmware; the second deleted it and probed a
		// new one, which loaded the firmware.
		applied := r.Values["applied.kmsg"]
		escalationLines(t, "the kernel log during apply", applied,
			"kfwtest_edu: probe of "+edu+" failed with error -5",
			"kfwtest_rtw: probe of "+intf+" failed with error -5",
			// Logged from the bus notifier, once the driver is unbound: the bus's name.
			"pci "+edu+": sticky: device deleted, forgotten",
			"usb "+intf+": sticky: device deleted, forgotten",
			"kfwtest_edu "+edu+": firmware loaded: "+rigEduFirmware+" (4242 bytes)",
			"kfwtest_rtw "+intf+": firmware loaded: "+rigRtwFirmware+" (31337 bytes)")
		for _, line := range applied {
			if strings.Contains(line, "Direct firmware load for") {
				t.Errorf("a firmware load failed during apply: %q", line)
			}
		}
		order := func(dev, first, then string) {
			i := slices.IndexFunc(applied, func(l string) bool { return strings.Contains(l, first) })
			j := slices.IndexFunc(applied, func(l string) bool { return strings.Contains(l, then) })
			if i < 0 || j < 0 || i > j {
				t.Errorf("%s: %q is not logged before %q", dev, first, then)
			}
		}
		order(edu, "probe of "+edu+" failed with error -5", edu+": firmware loaded")
		order(intf, "probe of "+intf+" failed with error -5", intf+": firmware loaded")
		// New struct devices: new sysfs directories at the same names.
		for _, dev := range []string{"edu", "usb-intf"} {
			before, after := r.Value("failed."+dev+"-ino"), r.Value("applied."+dev+"-ino")
			if before == "absent" || after == "absent" || before == after {
				t.Errorf("%s's sysfs directory: inode %s before apply, %s after; want a new one", dev, before, after)
			}
		}
	})
}
