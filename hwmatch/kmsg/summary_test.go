package kmsg

import (
	"reflect"
	"strings"
	"testing"
)

func TestDeviceSummary(t *testing.T) {
	input := strings.Join([]string{
		// Debian prints both failure lines for one attempt.
		"[ 7.39] iwlwifi 0000:00:14.3: firmware: failed to load iwlwifi-so-a0-gf-a0-72.ucode (-2)",
		"[ 7.39] iwlwifi 0000:00:14.3: Direct firmware load for iwlwifi-so-a0-gf-a0-72.ucode failed with error -2",
		"[ 7.40] iwlwifi 0000:00:14.3: firmware: failed to load iwlwifi-so-a0-gf-a0-71.ucode (-2)",
		"[ 7.41] iwlwifi 0000:00:14.3: firmware: direct-loading firmware iwlwifi-so-a0-gf-a0-64.ucode",
		// The spike: failure, probe failure, then after the sysext merge a successful load.
		spikeDmesgFirmware,
		spikeDmesgProbe,
		"[ 1753.2] rtw_8821au 1-4:1.0: firmware: direct-loading firmware rtw88/rtw8821a_fw.bin",
		// Loaded first, failing later (file went away): failing now.
		"[ 9.0] amdgpu 0000:03:00.0: firmware: direct-loading firmware amdgpu/navi14_sos.bin",
		"[ 99.0] amdgpu 0000:03:00.0: Direct firmware load for amdgpu/navi14_sos.bin failed with error -2",
		// Two probe failures: the last one counts.
		"[ 3.0] edu 0000:00:04.0: probe with driver edu_a failed with error -2",
		"[ 4.0] edu 0000:00:04.0: probe with driver edu_b failed with error -12",
	}, "\n")
	log, err := Parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	tests := []DeviceSummary{
		{
			Device: "0000:00:14.3", Driver: "iwlwifi",
			FirmwareFailed: []string{"iwlwifi-so-a0-gf-a0-72.ucode", "iwlwifi-so-a0-gf-a0-71.ucode"},
			FirmwareLoaded: []string{"iwlwifi-so-a0-gf-a0-64.ucode"},
		},
		{
			Device: "1-4:1.0", Driver: "rtw_8821au",
			FirmwareLoaded: []string{"rtw88/rtw8821a_fw.bin"},
			ProbeFailed:    true, ProbeDriver: "rtw_8821au", ProbeErrno: -22,
		},
		{
			Device: "0000:03:00.0", Driver: "amdgpu",
			FirmwareFailed: []string{"amdgpu/navi14_sos.bin"},
		},
		{
			Device: "0000:00:04.0", Driver: "edu_b",
			ProbeFailed: true, ProbeDriver: "edu_b", ProbeErrno: -12,
		},
		{Device: "9-9"},
	}
	for _, want := range tests {
		if got := log.Device(want.Device); !reflect.DeepEqual(got, want) {
			t.Errorf("Device(%q)\n got %+v\nwant %+v", want.Device, got, want)
		}
	}
	wantIDs := []string{"0000:00:04.0", "0000:00:14.3", "0000:03:00.0", "1-4:1.0"}
	if got := log.Devices(); !reflect.DeepEqual(got, wantIDs) {
		t.Errorf("Devices() = %q, want %q", got, wantIDs)
	}
}

func TestDeviceSummarySubsystem(t *testing.T) {
	input := "4,1234,49065898,-;rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2\n" +
		" SUBSYSTEM=usb\n" +
		" DEVICE=+usb:1-4:1.0\n" +
		spikeDmesgProbe + "\n"
	log, err := Parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	got := log.Device("1-4:1.0")
	if got.Subsystem != "usb" {
		t.Errorf("Subsystem = %q, want usb (kept from the kmsg record when a later text line has none)", got.Subsystem)
	}
	if !reflect.DeepEqual(got.FirmwareFailed, []string{"rtw88/rtw8821a_fw.bin"}) || !got.ProbeFailed {
		t.Errorf("got %+v", got)
	}
}

func TestDevicesEmpty(t *testing.T) {
	var log Log
	if got := log.Devices(); len(got) != 0 {
		t.Errorf("Devices() of an empty log = %q", got)
	}
}
