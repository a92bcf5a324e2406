package plan

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/manifests"
)

// syntheticInput builds devices × images × firmware files: each image provides
// firmwareFiles/images files, each device's module declares 4 of them, one device in 100 failed
// to load one, half the files are already on the system. A catch-all image provides them all.
func syntheticInput(devices, images, firmwareFiles int) Input {
	r := rand.New(rand.NewSource(42))
	names := make([]string, firmwareFiles)
	for i := range names {
		names[i] = fmt.Sprintf("vendor%03d/fw-%05d.bin", i%97, i)
	}
	in := Input{Config: config.Defaults()}
	catchAll := &manifests.Image{Name: "linux-firmware", Path: "/var/lib/kairos/extensions/linux-firmware.sysext.raw"}
	for i := 0; i < images; i++ {
		img := &manifests.Image{Name: fmt.Sprintf("fw-%04d", i), Path: fmt.Sprintf("/var/lib/kairos/extensions/fw-%04d.sysext.raw", i)}
		for j := i; j < firmwareFiles; j += images {
			img.Firmware = append(img.Firmware, manifests.FirmwareFile{Name: names[j], Path: "usr/lib/firmware/" + names[j]})
			catchAll.Firmware = append(catchAll.Firmware, manifests.FirmwareFile{Name: names[j], Path: "usr/lib/firmware/" + names[j]})
		}
		in.Images = append(in.Images, img)
	}
	in.Images = append(in.Images, catchAll)
	for i := 0; i < devices; i++ {
		d := &hwmatch.Device{Bus: "pci", ID: fmt.Sprintf("0000:%02x:%02x.%d", i/256%256, i%256/8, i%8), Vendor: "8086", Product: fmt.Sprintf("%04x", i%65536),
			Class: "028000", Modules: []string{fmt.Sprintf("mod%d", i%500)}, FirmwareFailed: []string{}}
		for k := 0; k < 4; k++ {
			d.Firmware = append(d.Firmware, names[r.Intn(firmwareFiles)])
		}
		d.Drivers, d.Needs = d.Modules, d.Firmware
		if i%100 == 0 {
			d.FirmwareFailed = []string{d.Firmware[0]}
		}
		in.Devices = append(in.Devices, d)
	}
	onSystem := map[string]bool{}
	for i, n := range names {
		onSystem[n] = i%2 == 0
	}
	in.Present = func(name string) string {
		if onSystem[name] {
			return "/lib/firmware/" + name
		}
		return ""
	}
	return in
}

// BenchmarkDecide measures the pure decision at the scale (10,000 devices × 1,000 images
// × 4,000 firmware files; goal: at most 100 ms) and at fractions of it, to show it grows linearly.
func BenchmarkDecide(b *testing.B) {
	for _, scale := range []int{1, 2, 4} {
		devices, images, files := 10000/scale, 1000/scale, 4000/scale
		in := syntheticInput(devices, images, files)
		b.Run(fmt.Sprintf("devices=%d/images=%d/firmware=%d", devices, images, files), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if p := Decide(in); len(p.Selected) == 0 {
					b.Fatal("nothing selected")
				}
			}
		})
	}
}
