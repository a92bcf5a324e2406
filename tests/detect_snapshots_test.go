package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/jaypipes/ghw/pkg/snapshot"

	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// ghwSnapshots returns the sysfs snapshots of real machines that ghw's module ships, read from
// the module cache (never copied into this repository).
func ghwSnapshots(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/jaypipes/ghw").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/jaypipes/ghw: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "testdata", "snapshots", "linux-amd64-*.tar.gz"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ghw snapshots found: %v", err)
	}
	return files
}

// unpackMachine unpacks a recorded machine and gives it the Debian kernel's modules, so the
// tree is a whole system for --root.
func unpackMachine(t testing.TB, snap string) string {
	t.Helper()
	root := t.TempDir()
	if err := snapshot.UnpackInto(snap, root); err != nil {
		t.Fatalf("unpacking %s: %v", snap, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(testkernel.Dir(t), "lib", "modules"), filepath.Join(root, "lib", "modules")); err != nil {
		t.Fatal(err)
	}
	return root
}

type kmodOracle struct {
	t        *testing.T
	dir      string
	resolved map[string][]string
	firmware map[string][]string
}

func (o *kmodOracle) modules(modalias string) []string {
	if mods, ok := o.resolved[modalias]; ok {
		return mods
	}
	out, err := exec.Command("modprobe", "-d", o.dir, "-S", testkernel.Release, "-C", "/dev/null", "-R", modalias).Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && len(out) == 0 {
		err = nil // no module matches
	}
	if err != nil {
		o.t.Fatalf("modprobe -R %q: %v", modalias, err)
	}
	// modprobe prints a module once per alias that matched: keep each once.
	mods := []string{}
	seen := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		m = strings.ReplaceAll(m, "-", "_")
		if !seen[m] {
			seen[m] = true
			mods = append(mods, m)
		}
	}
	sort.Strings(mods)
	o.resolved[modalias] = mods
	return mods
}

func (o *kmodOracle) declared(module string) []string {
	if fw, ok := o.firmware[module]; ok {
		return fw
	}
	out, err := exec.Command("modinfo", "-b", o.dir, "-k", testkernel.Release, "-F", "firmware", module).Output()
	if err != nil {
		o.t.Fatalf("modinfo -F firmware %s: %v", module, err)
	}
	fw := strings.Fields(string(out))
	o.firmware[module] = fw
	return fw
}

// TestDetectOnRecordedMachines runs `detect --root` on every recorded x86-64 machine with the
// real Debian kernel metadata, and checks every device's modules against `modprobe -R` and its
// firmware against `modinfo -F firmware`: kmod is the reference.
func TestDetectOnRecordedMachines(t *testing.T) {
	kernelDir := testkernel.Dir(t)
	testkernel.Tool(t, "modprobe")
	oracle := &kmodOracle{t: t, dir: kernelDir, resolved: map[string][]string{}, firmware: map[string][]string{}}
	var devices, withModules, withFirmware int
	for _, snap := range ghwSnapshots(t) {
		t.Run(filepath.Base(snap), func(t *testing.T) {
			root := unpackMachine(t, snap)
			var inv hwmatch.Inventory
			runJSON(t, &inv, "detect", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", "/dev/null", "--json")
			if inv.KernelRelease != testkernel.Release {
				t.Errorf("kernel_release = %q", inv.KernelRelease)
			}
			sysDevices, _ := filepath.Glob(filepath.Join(root, "sys/bus/pci/devices/*"))
			if len(inv.Devices) != len(sysDevices) {
				t.Errorf("%d devices reported, sysfs lists %d PCI devices", len(inv.Devices), len(sysDevices))
			}
			for _, d := range inv.Devices {
				devices++
				wantMods := oracle.modules(d.Modalias)
				if d.Modalias == "" {
					wantMods = []string{}
				}
				if !reflect.DeepEqual(d.Modules, wantMods) {
					t.Errorf("%s (%s): modules %v, modprobe -R says %v", d.ID, d.Modalias, d.Modules, wantMods)
				}
				wantFW := []string{}
				seen := map[string]bool{}
				for _, m := range wantMods {
					for _, fw := range oracle.declared(m) {
						if !seen[fw] {
							seen[fw] = true
							wantFW = append(wantFW, fw)
						}
					}
				}
				if !reflect.DeepEqual(d.Firmware, wantFW) {
					t.Errorf("%s: firmware %v, modinfo -F firmware says %v", d.ID, d.Firmware, wantFW)
				}
				if len(d.Modules) > 0 {
					withModules++
				}
				if len(d.Firmware) > 0 {
					withFirmware++
				}
				checkIDs(t, root, d)
			}
		})
	}
	t.Logf("%d devices, %d with modules, %d declaring firmware", devices, withModules, withFirmware)
	if withModules < 50 || withFirmware < 2 {
		t.Errorf("too few devices matched (%d with modules, %d with firmware) for the comparison to prove anything", withModules, withFirmware)
	}
}

// checkIDs compares a device's ids with the sysfs files they come from.
func checkIDs(t *testing.T, root string, d *hwmatch.Device) {
	t.Helper()
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(root, "sys/bus/pci/devices", d.ID, name))
		if err != nil {
			return ""
		}
		return strings.TrimPrefix(strings.TrimSpace(string(data)), "0x")
	}
	if v := read("vendor"); v != "" && v != d.Vendor {
		t.Errorf("%s: vendor %q, sysfs says %q", d.ID, d.Vendor, v)
	}
	if p := read("device"); p != "" && p != d.Product {
		t.Errorf("%s: product %q, sysfs says %q", d.ID, d.Product, p)
	}
	if c := read("class"); c != "" && c != d.Class {
		t.Errorf("%s: class %q, sysfs says %q", d.ID, d.Class, c)
	}
	if link, err := os.Readlink(filepath.Join(root, "sys/bus/pci/devices", d.ID, "driver")); err == nil && filepath.Base(link) != d.Driver {
		t.Errorf("%s: driver %q, sysfs link says %q", d.ID, d.Driver, filepath.Base(link))
	}
}
