package tests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// BenchmarkDetectLargestMachine measures Detect's own time on the recorded machine with the most
// PCI devices, with the Debian kernel's full metadata (26,000 aliases). Goal: at most 20 ms/op.
func BenchmarkDetectLargestMachine(b *testing.B) {
	var largest string
	var most int
	for _, snap := range ghwSnapshots(b) {
		root := unpackMachine(b, snap)
		devs, _ := filepath.Glob(filepath.Join(root, "sys/bus/pci/devices/*"))
		if len(devs) > most {
			largest, most = root, len(devs)
		}
	}
	root, err := hostfs.New(largest)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(most), "devices")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		inv, err := hwmatch.Detect(hwmatch.Options{Root: root, KernelRelease: testkernel.Release, KmsgPath: os.DevNull})
		if err != nil || len(inv.Devices) != most {
			b.Fatalf("detect: %v, %d devices", err, len(inv.Devices))
		}
	}
}
