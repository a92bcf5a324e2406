package report

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

func TestWriteLoadRoundTrip(t *testing.T) {
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{"/run": &vfst.Dir{Perm: 0o755}, "/dev/kmsg": ""})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	root := hostfs.FromFS(fsys.TempDir(), fsys)
	r := New("apply", time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC))
	r.Images = append(r.Images, Image{Name: "fw-realtek", Path: "/var/lib/kairos/extensions/fw-realtek.sysext.raw", Outcome: ImageMerged, Mount: "/run/kairos-firmware/images/fw-realtek"})
	r.Devices = append(r.Devices, Device{Device: "1-4:1.0", Bus: "usb", Outcome: DeviceBound, Method: "drivers_probe", Attempts: 1, Driver: "rtw_8821au", DurationMS: 12})
	r.Firmware = append(r.Firmware, Firmware{Name: "rtw88/rtw8821a_fw.bin", Image: "fw-realtek", Path: "/run/kairos-firmware/firmware/rtw88/rtw8821a_fw.bin", Size: 4, SHA256: "ab"})
	r.Errorf("image %s: %s", "broken", "no extension-release")
	if err := Write(root, DefaultPath, r); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Stat(DefaultPath + ".tmp"); err == nil {
		t.Error("the temporary file was left behind")
	}
	back, err := Load(root, DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, r)
	}
	if err := fsys.WriteFile(DefaultPath, []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(root, DefaultPath); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("a report of another version: %v", err)
	}

	var console bytes.Buffer
	l := NewLogger(root, &console, true)
	l.Printf("merged %d images", 2)
	l.Warnf("device %s: %s", "1-4:1.0", "still unbound")
	l.Close()
	if console.String() != "kairos-firmware: merged 2 images\nkairos-firmware: device 1-4:1.0: still unbound\n" {
		t.Errorf("console: %q", console.String())
	}
	kmsg, _ := fsys.ReadFile("/dev/kmsg")
	if string(kmsg) != "<14>kairos-firmware: merged 2 images<12>kairos-firmware: device 1-4:1.0: still unbound" {
		t.Errorf("kmsg records: %q", kmsg)
	}
}
