package reprobe

import (
	"encoding/json"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/stages/plan"
)

const (
	rtwFirmware = "rtw88/rtw8821a_fw.bin"
	hub         = "/sys/devices/pci0000:00/0000:00:14.0/usb1"
)

// spikeRig is the spike's machine: the Realtek adapter 1-4 whose interface 1-4:1.0 failed to
// load its firmware at boot, behind the xHCI controller 0000:00:14.0.
func spikeRig(t *testing.T) (*rig, *fakeDev) {
	r := newRig(t)
	r.pci("/sys/devices/pci0000:00", "0000:00:14.0", "0c0330", "xhci_hcd", true)
	iface := r.usbIface(hub+"/1-4", "1-4:1.0", "rtw_8821au", false)
	iface.firmwareFailed = []string{rtwFirmware}
	r.usb(hub, "1-4", iface)
	r.log(
		"[   48.874800] usb 1-4: new high-speed USB device number 3 using xhci_hcd",
		"[   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2",
		"[   49.065904] rtw_8821au 1-4:1.0: failed to request firmware",
		"[   49.078480] rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22",
	)
	return r, iface
}

var spikeItem = plan.Reprobe{Device: "1-4:1.0", Bus: "usb", Method: plan.MethodDriversProbe,
	Fallbacks: []string{plan.MethodUSBReenumerate}}

// eduRig has QEMU's edu device 0000:00:03.0, unbound, as the QEMU rig's test module leaves it.
func eduRig(t *testing.T) (*rig, *fakeDev) {
	r := newRig(t)
	edu := r.pci("/sys/devices/pci0000:00", "0000:00:03.0", "00ff00", "kfwtest", false)
	return r, edu
}

var eduItem = plan.Reprobe{Device: "0000:00:03.0", Bus: "pci", Method: plan.MethodDriversProbe,
	Fallbacks: []string{plan.MethodPCIRescan}}

func reprobeCfg(attempts int, timeout time.Duration) config.Reprobe {
	return config.Reprobe{Mode: config.ReprobeFailed, Exclude: []string{}, Force: []string{}, Attempts: attempts,
		Timeout: config.Duration(timeout)}
}

// run runs the re-probe of one plan entry and returns its result and the writes made.
func run(t *testing.T, r *rig, item plan.Reprobe, cfg config.Reprobe) (Result, []string) {
	t.Helper()
	k := r.start()
	results := Run(k.root, k.ops, r.inventory(), []plan.Reprobe{item}, cfg, Options{})
	if len(results) != 1 {
		t.Fatalf("%d results, want 1: %+v", len(results), results)
	}
	return results[0], k.writes()
}

func checkResult(t *testing.T, got, want Result) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("result\n got %+v\nwant %+v", got, want)
	}
}

func checkWrites(t *testing.T, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("writes\n got %q\nwant %q", got, want)
	}
}

func TestDriversProbeBindsOnce(t *testing.T) {
	r, _ := spikeRig(t)
	res, writes := run(t, r, spikeItem, reprobeCfg(3, 10*time.Second))
	checkWrites(t, writes, "write /sys/bus/usb/drivers_probe 1-4:1.0")
	checkResult(t, res, Result{Device: "1-4:1.0", Bus: "usb", Outcome: OutcomeBound,
		Reason: "bound to rtw_8821au by drivers_probe", Method: plan.MethodDriversProbe,
		Tried: []string{plan.MethodDriversProbe}, Attempts: 1, Driver: "rtw_8821au", FirmwareFailed: []string{}})
}

// The spike's case: drivers_probe finds the interface but its driver does not bind again (the
// kernel logs nothing at info level for that); unbinding and binding the USB device, as the
// spike's script did, creates the interface anew and it binds.
func TestUSBReenumerateAfterDriversProbe(t *testing.T) {
	r, iface := spikeRig(t)
	iface.probe = func(trigger string) probeResult { return probeResult{bind: trigger == "usb-bind"} }
	res, writes := run(t, r, spikeItem, reprobeCfg(3, 10*time.Second))
	checkWrites(t, writes,
		"write /sys/bus/usb/drivers_probe 1-4:1.0",
		"write /sys/bus/usb/drivers/usb/unbind 1-4",
		"write /sys/bus/usb/drivers/usb/bind 1-4")
	checkResult(t, res, Result{Device: "1-4:1.0", Bus: "usb", Outcome: OutcomeBound,
		Reason: "bound to rtw_8821au by usb-reenumerate (before: drivers_probe: no driver bound within 10s)", Method: plan.MethodUSBReenumerate,
		Tried:    []string{plan.MethodDriversProbe, plan.MethodUSBReenumerate},
		Attempts: 2, Driver: "rtw_8821au", Duration: 10 * time.Second, FirmwareFailed: []string{}})
}

// A driver that bound degraded (r8169 without its rtl_nic firmware) is unbound and probed again.
func TestRebind(t *testing.T) {
	r := newRig(t)
	r.pci("/sys/devices/pci0000:00/0000:00:1c.0", "0000:02:00.0", "020000", "r8169", true)
	item := plan.Reprobe{Device: "0000:02:00.0", Bus: "pci", Method: plan.MethodRebind, Fallbacks: []string{plan.MethodPCIRescan}}
	res, writes := run(t, r, item, reprobeCfg(3, 10*time.Second))
	checkWrites(t, writes,
		"write /sys/bus/pci/drivers/r8169/unbind 0000:02:00.0",
		"write /sys/bus/pci/drivers_probe 0000:02:00.0")
	checkResult(t, res, Result{Device: "0000:02:00.0", Bus: "pci", Outcome: OutcomeBound,
		Reason: "bound to r8169 by rebind", Method: plan.MethodRebind, Tried: []string{plan.MethodRebind},
		Attempts: 1, Driver: "r8169", FirmwareFailed: []string{}})
}

// A device that binds only once it is removed and found again by a rescan.
func TestPCIRescan(t *testing.T) {
	r, edu := eduRig(t)
	edu.probe = func(trigger string) probeResult { return probeResult{bind: trigger == "rescan"} }
	res, writes := run(t, r, eduItem, reprobeCfg(3, 2*time.Second))
	checkWrites(t, writes,
		"write /sys/bus/pci/drivers_probe 0000:00:03.0",
		"write /sys/bus/pci/devices/0000:00:03.0/remove 1",
		"write /sys/bus/pci/rescan 1")
	checkResult(t, res, Result{Device: "0000:00:03.0", Bus: "pci", Outcome: OutcomeBound,
		Reason: "bound to kfwtest by pci-rescan (before: drivers_probe: no driver bound within 2s)", Method: plan.MethodPCIRescan,
		Tried:    []string{plan.MethodDriversProbe, plan.MethodPCIRescan},
		Attempts: 2, Driver: "kfwtest", Duration: 2 * time.Second, FirmwareFailed: []string{}})
}

// A device that never binds and never says why gets exactly reprobe.attempts attempts; past
// the plan's last method, the last method is repeated.
func TestAttemptsAreBounded(t *testing.T) {
	never := func(string) probeResult { return probeResult{} }
	t.Run("three", func(t *testing.T) {
		r, edu := eduRig(t)
		edu.probe = never
		res, writes := run(t, r, eduItem, reprobeCfg(3, time.Second))
		checkWrites(t, writes,
			"write /sys/bus/pci/drivers_probe 0000:00:03.0",
			"write /sys/bus/pci/devices/0000:00:03.0/remove 1",
			"write /sys/bus/pci/rescan 1",
			"write /sys/bus/pci/devices/0000:00:03.0/remove 1",
			"write /sys/bus/pci/rescan 1")
		checkResult(t, res, Result{Device: "0000:00:03.0", Bus: "pci", Outcome: OutcomeStillUnbound,
			Reason: "not bound after 3 attempt(s): drivers_probe: no driver bound within 1s; " +
				"pci-rescan: no driver bound within 1s; pci-rescan: no driver bound within 1s",
			Method: plan.MethodPCIRescan, Tried: []string{plan.MethodDriversProbe, plan.MethodPCIRescan, plan.MethodPCIRescan},
			Attempts: 3, Duration: 3 * time.Second, FirmwareFailed: []string{}})
	})
	t.Run("one", func(t *testing.T) {
		r, edu := eduRig(t)
		edu.probe = never
		res, writes := run(t, r, eduItem, reprobeCfg(1, time.Second))
		checkWrites(t, writes, "write /sys/bus/pci/drivers_probe 0000:00:03.0")
		if res.Outcome != OutcomeStillUnbound || res.Attempts != 1 || res.Duration != time.Second {
			t.Errorf("got %+v", res)
		}
	})
}

// An asynchronous probe binds 1.5 s after the write: within a 2 s timeout the first attempt
// sees it; with 1 s it does not.
func TestTimeout(t *testing.T) {
	late := func(string) probeResult { return probeResult{bind: true, after: 1500 * time.Millisecond} }
	t.Run("within", func(t *testing.T) {
		r, iface := spikeRig(t)
		iface.probe = late
		res, writes := run(t, r, spikeItem, reprobeCfg(3, 2*time.Second))
		checkWrites(t, writes, "write /sys/bus/usb/drivers_probe 1-4:1.0")
		if res.Outcome != OutcomeBound || res.Attempts != 1 || res.Duration != 1500*time.Millisecond {
			t.Errorf("got %+v", res)
		}
	})
	t.Run("past", func(t *testing.T) {
		r, iface := spikeRig(t)
		iface.probe = late
		res, writes := run(t, r, spikeItem, reprobeCfg(1, time.Second))
		checkWrites(t, writes, "write /sys/bus/usb/drivers_probe 1-4:1.0")
		checkResult(t, res, Result{Device: "1-4:1.0", Bus: "usb", Outcome: OutcomeStillUnbound,
			Reason: "not bound after 1 attempt(s): drivers_probe: no driver bound within 1s",
			Method: plan.MethodDriversProbe, Tried: []string{plan.MethodDriversProbe},
			Attempts: 1, Duration: time.Second, FirmwareFailed: []string{}})
	})
}

// The firmware that failed at boot fails again: it is still not visible, and re-enumerating the
// device would only load the driver the same way. One attempt, ended by the logged probe
// failure rather than the timeout.
func TestSameFirmwareFailingAgainStops(t *testing.T) {
	r, iface := spikeRig(t)
	iface.probe = func(string) probeResult { return probeResult{firmwareFailed: rtwFirmware} }
	res, writes := run(t, r, spikeItem, reprobeCfg(3, 10*time.Second))
	checkWrites(t, writes, "write /sys/bus/usb/drivers_probe 1-4:1.0")
	checkResult(t, res, Result{Device: "1-4:1.0", Bus: "usb", Outcome: OutcomeStillUnbound,
		Reason: "rtw88/rtw8821a_fw.bin failed to load again: the firmware is still not visible to the kernel " +
			"(drivers_probe: probe with driver rtw_8821au failed with error -2, rtw88/rtw8821a_fw.bin failed to load)",
		Method: plan.MethodDriversProbe, Tried: []string{plan.MethodDriversProbe},
		Attempts: 1, FirmwareFailed: []string{rtwFirmware}})
}

// A name that fails for the first time lets the next method try; failing twice stops.
func TestNewFirmwareFailureEscalatesOnce(t *testing.T) {
	r, edu := eduRig(t)
	edu.probe = func(string) probeResult { return probeResult{firmwareFailed: "edu/edu-v2.bin"} }
	res, writes := run(t, r, eduItem, reprobeCfg(5, 10*time.Second))
	checkWrites(t, writes,
		"write /sys/bus/pci/drivers_probe 0000:00:03.0",
		"write /sys/bus/pci/devices/0000:00:03.0/remove 1",
		"write /sys/bus/pci/rescan 1")
	if res.Outcome != OutcomeStillUnbound || res.Attempts != 2 || res.Duration != 0 ||
		!reflect.DeepEqual(res.FirmwareFailed, []string{"edu/edu-v2.bin"}) ||
		!strings.HasPrefix(res.Reason, "edu/edu-v2.bin failed to load again: ") {
		t.Errorf("got %+v", res)
	}
}

// rebind on a device whose driver is gone (its first attempt unbound it) is drivers_probe.
func TestRebindOfAnUnboundDeviceIsDriversProbe(t *testing.T) {
	r := newRig(t)
	r.pci("/sys/devices/pci0000:00", "0000:00:03.0", "00ff00", "kfwtest", true)
	probes := 0
	r.devs["0000:00:03.0"].probe = func(trigger string) probeResult {
		probes++
		return probeResult{firmwareFailed: "edu/edu.bin"}
	}
	item := plan.Reprobe{Device: "0000:00:03.0", Bus: "pci", Method: plan.MethodRebind}
	res, writes := run(t, r, item, reprobeCfg(2, 10*time.Second))
	checkWrites(t, writes,
		"write /sys/bus/pci/drivers/kfwtest/unbind 0000:00:03.0",
		"write /sys/bus/pci/drivers_probe 0000:00:03.0",
		"write /sys/bus/pci/drivers_probe 0000:00:03.0")
	if probes != 2 || res.Outcome != OutcomeStillUnbound || res.Attempts != 2 ||
		!strings.HasPrefix(res.Reason, "edu/edu.bin failed to load again: ") {
		t.Errorf("probes %d, result %+v", probes, res)
	}
}

// A write the kernel refuses stops that attempt; a device that stays bound as it was is
// reported bound, with the reason saying no attempt bound it.
func TestRefusedWrites(t *testing.T) {
	r := newRig(t)
	r.pci("/sys/devices/pci0000:00/0000:00:1c.0", "0000:02:00.0", "020000", "r8169", true)
	k := r.start()
	k.ops.OnWrite = func(p, value string) error { return errno(p, syscall.EACCES) }
	item := plan.Reprobe{Device: "0000:02:00.0", Bus: "pci", Method: plan.MethodRebind, Fallbacks: []string{plan.MethodPCIRescan}}
	results := Run(k.root, k.ops, r.inventory(), []plan.Reprobe{item}, reprobeCfg(2, 10*time.Second), Options{})
	checkWrites(t, k.writes(),
		"write /sys/bus/pci/drivers/r8169/unbind 0000:02:00.0",
		"write /sys/bus/pci/devices/0000:02:00.0/remove 1")
	res := results[0]
	res.Reason = strings.ReplaceAll(res.Reason, k.dir, "")
	checkResult(t, res, Result{Device: "0000:02:00.0", Bus: "pci", Outcome: OutcomeBound,
		Reason: "bound to r8169, but not by any attempt: " +
			"rebind: write /sys/bus/pci/drivers/r8169/unbind: permission denied; " +
			"pci-rescan: write /sys/bus/pci/devices/0000:02:00.0/remove: permission denied",
		Method: plan.MethodPCIRescan, Tried: []string{plan.MethodRebind, plan.MethodPCIRescan}, Attempts: 2,
		Driver: "r8169", FirmwareFailed: []string{}})
}

// A driver that binds without its firmware is bound, and the result says which file it lacks.
func TestBoundWithoutFirmware(t *testing.T) {
	r := newRig(t)
	nic := r.pci("/sys/devices/pci0000:00/0000:00:1c.0", "0000:02:00.0", "020000", "r8169", true)
	nic.probe = func(string) probeResult { return probeResult{bind: true, firmwareFailed: "rtl_nic/rtl8168h-2.fw"} }
	item := plan.Reprobe{Device: "0000:02:00.0", Bus: "pci", Method: plan.MethodRebind, Fallbacks: []string{plan.MethodPCIRescan}}
	res, _ := run(t, r, item, reprobeCfg(3, 10*time.Second))
	if res.Outcome != OutcomeBound || res.Attempts != 1 || res.Driver != "r8169" ||
		!reflect.DeepEqual(res.FirmwareFailed, []string{"rtl_nic/rtl8168h-2.fw"}) ||
		res.Reason != "bound to r8169 by rebind; rtl_nic/rtl8168h-2.fw failed to load: the driver runs without it or loaded another file" {
		t.Errorf("got %+v", res)
	}
}

func TestAlreadyBoundIsNotTouched(t *testing.T) {
	r, _ := eduRig(t)
	r.devs["0000:00:03.0"].bound = true
	r.tree["/sys/devices/pci0000:00/0000:00:03.0/driver"] = relLink("/sys/devices/pci0000:00/0000:00:03.0/driver", "/sys/bus/pci/drivers/kfwtest")
	res, writes := run(t, r, eduItem, reprobeCfg(3, 10*time.Second))
	checkWrites(t, writes)
	if res.Outcome != OutcomeBound || res.Attempts != 0 || res.Driver != "kfwtest" || res.Reason != "already bound to kfwtest before any attempt" {
		t.Errorf("got %+v", res)
	}
}

func TestExclude(t *testing.T) {
	r, _ := spikeRig(t)
	cfg := reprobeCfg(3, 10*time.Second)
	cfg.Exclude = []string{"1-4:1.0"}
	res, writes := run(t, r, spikeItem, cfg)
	checkWrites(t, writes)
	checkResult(t, res, Result{Device: "1-4:1.0", Bus: "usb", Outcome: OutcomeSkipped, Reason: "excluded by reprobe.exclude",
		Tried: []string{}, FirmwareFailed: []string{}})
}

// A device the inventory does not have and sysfs does not either.
func TestMissingDevice(t *testing.T) {
	r, _ := eduRig(t)
	item := plan.Reprobe{Device: "0000:00:09.0", Bus: "pci", Method: plan.MethodDriversProbe}
	res, writes := run(t, r, item, reprobeCfg(3, 10*time.Second))
	checkWrites(t, writes)
	if res.Outcome != OutcomeStillUnbound || !strings.HasPrefix(res.Reason, "not present: ") ||
		!strings.Contains(res.Reason, "/sys/bus/pci/devices/0000:00:09.0") {
		t.Errorf("got %+v", res)
	}
}

// Without a kernel log the attempts are judged by the driver link, and the result says so.
func TestWithoutKernelLog(t *testing.T) {
	r, _ := spikeRig(t)
	k := r.start()
	results := Run(k.root, k.ops, r.inventory(), []plan.Reprobe{spikeItem}, reprobeCfg(3, time.Second),
		Options{KmsgPath: "/nonexistent/kmsg"})
	if len(results) != 1 || results[0].Outcome != OutcomeBound || len(results[0].Warnings) != 1 ||
		!strings.Contains(results[0].Warnings[0], "/nonexistent/kmsg") {
		t.Errorf("got %+v", results)
	}
}

func TestResultJSON(t *testing.T) {
	res := Result{Device: "1-4:1.0", Bus: "usb", Outcome: OutcomeBound, Reason: "bound to rtw_8821au by usb-reenumerate",
		Method: plan.MethodUSBReenumerate, Tried: []string{"drivers_probe", "usb-reenumerate"}, Attempts: 2,
		Driver: "rtw_8821au", Duration: 10*time.Second + 250*time.Millisecond, FirmwareFailed: []string{}}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"device":"1-4:1.0","bus":"usb","outcome":"bound","reason":"bound to rtw_8821au by usb-reenumerate",` +
		`"method":"usb-reenumerate","tried":["drivers_probe","usb-reenumerate"],"attempts":2,"driver":"rtw_8821au",` +
		`"firmware_failed":[],"duration_ms":10250}`
	if string(data) != want {
		t.Errorf("JSON\n got %s\nwant %s", data, want)
	}
	var back Result
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	checkResult(t, back, res)
}

// Several devices are done in the plan's order, each with its own attempts.
func TestSeveralDevices(t *testing.T) {
	r, iface := spikeRig(t)
	iface.probe = func(trigger string) probeResult { return probeResult{bind: trigger == "usb-bind"} }
	r.pci("/sys/devices/pci0000:00", "0000:00:03.0", "00ff00", "kfwtest", false)
	k := r.start()
	results := Run(k.root, k.ops, r.inventory(), []plan.Reprobe{eduItem, spikeItem}, reprobeCfg(2, time.Second), Options{})
	checkWrites(t, k.writes(),
		"write /sys/bus/pci/drivers_probe 0000:00:03.0",
		"write /sys/bus/usb/drivers_probe 1-4:1.0",
		"write /sys/bus/usb/drivers/usb/unbind 1-4",
		"write /sys/bus/usb/drivers/usb/bind 1-4")
	if len(results) != 2 || results[0].Device != "0000:00:03.0" || results[0].Method != plan.MethodDriversProbe ||
		results[1].Device != "1-4:1.0" || results[1].Method != plan.MethodUSBReenumerate || results[1].Outcome != OutcomeBound {
		t.Errorf("got %+v", results)
	}
}

// bind_store turns -EPROBE_DEFER into EAGAIN: the probe is queued and may still bind, so the
// attempt waits for it instead of giving up at the write's error.
func TestDeferredBindIsWaitedFor(t *testing.T) {
	r, iface := spikeRig(t)
	iface.probe = func(trigger string) probeResult {
		return probeResult{bind: trigger == "usb-bind", after: 500 * time.Millisecond}
	}
	k := r.start()
	k.ops.OnWrite = func(p, value string) error {
		if err := k.write(p, value); err != nil || !strings.HasSuffix(p, "/bind") {
			return err
		}
		return errno(p, syscall.EAGAIN)
	}
	results := Run(k.root, k.ops, r.inventory(), []plan.Reprobe{spikeItem}, reprobeCfg(3, time.Second), Options{})
	checkWrites(t, k.writes(),
		"write /sys/bus/usb/drivers_probe 1-4:1.0",
		"write /sys/bus/usb/drivers/usb/unbind 1-4",
		"write /sys/bus/usb/drivers/usb/bind 1-4")
	if res := results[0]; res.Outcome != OutcomeBound || res.Method != plan.MethodUSBReenumerate ||
		res.Duration != 1500*time.Millisecond {
		t.Errorf("got %+v", res)
	}
}
