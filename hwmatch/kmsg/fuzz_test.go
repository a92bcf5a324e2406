package kmsg

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		spikeDmesgFirmware, spikeDmesgProbe, spikeJournalFW, spikeJournalProbe,
		"4,1234,49065898,-;rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2\n SUBSYSTEM=usb\n DEVICE=+usb:1-4:1.0\n",
		`4,10,1,-;drv 1-1: Direct firmware load for a\x5c\x20b failed with error -2\x0aline`,
		"[ 7.39] iwlwifi 0000:00:14.3: firmware: failed to load iwlwifi-so-a0-gf-a0-72.ucode (-2)",
		"[ 7.28] platform regulatory.0: firmware: direct-loading firmware regulatory.db",
		"[ 2.10] e1000e: probe of 0000:00:19.0 failed with error -2",
		"[ 1.0] firmware_class:fw_get_filesystem_firmware:567: rtw 1-4:1.0: direct-loading x.bin",
		"<4>[ 1.0]  foo0: Direct firmware load for  failed with error -2",
		"kern  :warn  : [Thu Sep  4 09:19:13 2025] [  T1] a b: probe with driver  failed with error 1",
		"Sep  4 09:19:13 h kernel: [ 1.0] a b: firmware: failed to load  (-2)",
		"1,2,3,-;x y: firmware: failed to load (5)\n A=b\n",
	}
	for _, seed := range seeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		log, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Parse of in-memory input failed: %v", err)
		}
		if log.Records > bytes.Count(data, []byte{'\n'})+1 {
			t.Errorf("Records = %d for %d lines", log.Records, bytes.Count(data, []byte{'\n'})+1)
		}
		devices := map[string]bool{}
		for _, ev := range log.Events {
			if !isSysfsName(ev.Device) || strings.ContainsAny(ev.Device, " /") || ev.Device == ".." {
				t.Errorf("event with bad Device %q: %+v", ev.Device, ev)
			}
			if ev.Driver != "" && strings.ContainsAny(ev.Driver, " /") {
				t.Errorf("event with bad Driver %q: %+v", ev.Driver, ev)
			}
			switch ev.Kind {
			case FirmwareFailed, FirmwareLoaded:
				if strings.TrimSpace(ev.Firmware) == "" {
					t.Errorf("firmware event without Firmware: %+v", ev)
				}
				if slices.Contains(strings.Split(ev.Firmware, "/"), "..") {
					t.Errorf("firmware name with a .. element: %+v", ev)
				}
			case ProbeFailed:
				if ev.Firmware != "" || ev.Driver == "" {
					t.Errorf("probe event with Firmware or without Driver: %+v", ev)
				}
			default:
				t.Errorf("event of unknown kind: %+v", ev)
			}
			if ev.Kind == FirmwareLoaded && ev.Errno != 0 {
				t.Errorf("successful load with an errno: %+v", ev)
			}
			devices[ev.Device] = true
		}
		ids := log.Devices()
		if !slices.IsSorted(ids) || len(ids) != len(devices) {
			t.Errorf("Devices() = %q for devices %v", ids, devices)
		}
		for _, id := range ids {
			sum := log.Device(id)
			for _, name := range sum.FirmwareFailed {
				if slices.Contains(sum.FirmwareLoaded, name) {
					t.Errorf("device %s: %q both failed and loaded", id, name)
				}
			}
		}
	})
}
