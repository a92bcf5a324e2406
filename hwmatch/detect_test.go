package hwmatch

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch/fakesys"
)

func detectTree(t *testing.T, tree map[string]any, opts Options) *Inventory {
	t.Helper()
	fsys, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	opts.Root = hostfs.FromFS(fsys.TempDir(), fsys)
	if opts.KernelRelease == "" {
		opts.KernelRelease = fakesys.Release
	}
	inv, err := Detect(opts)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func deviceByID(t *testing.T, inv *Inventory, id string) *Device {
	t.Helper()
	for _, d := range inv.Devices {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("device %s not in inventory (%d devices)", id, len(inv.Devices))
	return nil
}

func TestDetectSpikeMachine(t *testing.T) {
	inv := detectTree(t, fakesys.SpikeMachine(), Options{})

	var ids []string
	for _, d := range inv.Devices {
		ids = append(ids, d.ID)
	}
	wantIDs := []string{"0000:00:00.0", "0000:00:02.0", "0000:00:03.0", "0000:00:04.0", "0000:00:06.0", "1-0:1.0", "1-4", "1-4:1.0", "usb1"}
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Fatalf("devices %v, want %v", ids, wantIDs)
	}

	iface := deviceByID(t, inv, "1-4:1.0")
	want := &Device{
		Bus: "usb", ID: "1-4:1.0", Vendor: "2357", Product: "011e", Class: "ffffff",
		Modalias:  "usb:v2357p011Ed0200dc00dsc00dp00icFFiscFFipFFin00",
		Parent:    "1-4",
		SysfsPath: "/sys/devices/pci0000:00/0000:00:05.0/usb1/1-4/1-4:1.0",
		Modules:   []string{"rtw88_8821au"}, Firmware: []string{},
		Drivers: []string{"rtw88_8821au"}, Needs: []string{},
		FirmwareFailed: []string{"rtw88/rtw8821a_fw.bin"}, ProbeFailed: true, ProbeError: -22,
		Status: StatusFailedFirmware,
		// rtw88_8821au.ko is not in this tree: its declared firmware cannot be read.
		Warnings: iface.Warnings,
	}
	if !reflect.DeepEqual(iface, want) {
		t.Errorf("interface:\n got %+v\nwant %+v", iface, want)
	}
	if len(iface.Warnings) != 1 || !strings.Contains(iface.Warnings[0], "rtw88_8821au") {
		t.Errorf("want one warning about the missing module file, got %q", iface.Warnings)
	}

	if hub := deviceByID(t, inv, "1-0:1.0"); hub.Parent != "usb1" || hub.Vendor != "1d6b" || hub.Product != "0002" || hub.Class != "090000" {
		t.Errorf("root hub interface: %+v", hub)
	}

	dev := deviceByID(t, inv, "1-4")
	if dev.Vendor != "2357" || dev.Product != "011e" || dev.Class != "000000" || dev.Driver != "usb" || dev.Status != StatusBound || dev.Modalias != "" {
		t.Errorf("USB device: %+v", dev)
	}

	edu := deviceByID(t, inv, "0000:00:03.0")
	if !reflect.DeepEqual(edu.Modules, []string{"edu_fw"}) || !reflect.DeepEqual(edu.Firmware, []string{"edu/edu.bin", "edu/edu-v2.bin"}) ||
		!reflect.DeepEqual(edu.FirmwareFailed, []string{"edu/edu.bin"}) || edu.Status != StatusFailedFirmware || edu.ProbeFailed {
		t.Errorf("edu (built-in module, firmware failure without probe failure): %+v", edu)
	}

	if d := deviceByID(t, inv, "0000:00:02.0"); d.Status != StatusBound || d.Driver != "e1000" || !reflect.DeepEqual(d.Modules, []string{"e1000"}) {
		t.Errorf("bound e1000: %+v", d)
	}
	if d := deviceByID(t, inv, "0000:00:06.0"); d.Status != StatusUnbound || !reflect.DeepEqual(d.Modules, []string{"rtw88_8821ce"}) {
		t.Errorf("unbound device: %+v", d)
	}
	if d := deviceByID(t, inv, "0000:00:00.0"); d.Status != StatusNoDriver || len(d.Modules) != 0 {
		t.Errorf("host bridge: %+v", d)
	}

	bad := deviceByID(t, inv, "0000:00:04.0")
	if bad.Vendor != "10ec" || bad.Product != "c821" || bad.Class != "028000" {
		t.Errorf("malformed-modalias device ids from sysfs files: %+v", bad)
	}
	// Its truncated modalias lacks the "sv" part every PCI alias spells out: nothing matches.
	if len(bad.Modules) != 0 || bad.Status != StatusNoDriver {
		t.Errorf("malformed-modalias device: %+v", bad)
	}
	if len(bad.Warnings) == 0 || !strings.Contains(strings.Join(bad.Warnings, " "), "malformed modalias") {
		t.Errorf("want a malformed-modalias warning, got %q", bad.Warnings)
	}

	if w := strings.Join(inv.Warnings, "\n"); !strings.Contains(w, "modules.alias: 1 malformed lines skipped") {
		t.Errorf("want the malformed modules.alias line reported, got %q", w)
	}
}

func TestDetectDegradesWithoutKernelMetadata(t *testing.T) {
	tree := fakesys.SpikeMachine()
	for p := range tree {
		if strings.HasPrefix(p, "/lib/modules/") || p == "/dev/kmsg" {
			delete(tree, p)
		}
	}
	inv := detectTree(t, tree, Options{})
	if len(inv.Devices) != 9 {
		t.Fatalf("want all 9 devices without kernel metadata, got %d", len(inv.Devices))
	}
	w := strings.Join(inv.Warnings, "\n")
	for _, want := range []string{"no modules directory for kernel " + fakesys.Release, "kernel log:"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
	if d := deviceByID(t, inv, "1-4:1.0"); d.Status != StatusNoDriver || len(d.FirmwareFailed) != 0 {
		t.Errorf("without metadata the interface is %+v", d)
	}
}

func TestDetectKmsgOverride(t *testing.T) {
	log := t.TempDir() + "/dmesg.txt"
	// journal format, as `journalctl -k` prints it in the spike
	content := "Sep 04 09:19:13 localhost kernel: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2\n"
	if err := os.WriteFile(log, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := detectTree(t, fakesys.SpikeMachine(), Options{KmsgPath: log})
	if d := deviceByID(t, inv, "1-4:1.0"); !reflect.DeepEqual(d.FirmwareFailed, []string{"rtw88/rtw8821a_fw.bin"}) || d.ProbeFailed {
		t.Errorf("--kmsg file not used: %+v", d)
	}
	if d := deviceByID(t, inv, "0000:00:03.0"); len(d.FirmwareFailed) != 0 {
		t.Errorf("the root's /dev/kmsg was read although --kmsg was given: %+v", d)
	}
}

func TestKernelReleaseFromRoot(t *testing.T) {
	tree := fakesys.SpikeMachine()
	tree["/proc/sys/kernel/osrelease"] = fakesys.Release + "\n"
	fsys, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	inv, err := Detect(Options{Root: hostfs.FromFS(fsys.TempDir(), fsys)})
	if err != nil {
		t.Fatal(err)
	}
	if inv.KernelRelease != fakesys.Release || inv.Kernel == nil {
		t.Errorf("kernel release %q, kernel %v", inv.KernelRelease, inv.Kernel)
	}
}

// TestDrivers: which matching modules count as the device's drivers, whose firmware it needs.
func TestDrivers(t *testing.T) {
	for _, c := range []struct {
		name           string
		d              Device
		specific, want []string
	}{
		{"bound, module from sysfs", Device{Driver: "rtw_8821au", driverModule: "rtw88_8821au", Modules: []string{"rtw88_8821au"}}, nil, []string{"rtw88_8821au"}},
		{"bound, the driver's name is its module's", Device{Driver: "r8169", Modules: []string{"r8169"}}, []string{"r8169"}, []string{"r8169"}},
		{"bound, dashes and underscores alike", Device{Driver: "snd-hda-intel", Modules: []string{"snd_hda_intel"}}, nil, []string{"snd_hda_intel"}},
		{"bound to a driver no module provides", Device{Driver: "nvidia", Modules: []string{"nouveau"}}, nil, []string{}},
		{"bound to one of two", Device{Driver: "radeon", Modules: []string{"amdgpu", "radeon"}}, []string{"radeon"}, []string{"radeon"}},
		{"unbound, a catch-all and a specific driver", Device{Modules: []string{"amdgpu", "radeon"}}, []string{"radeon"}, []string{"radeon"}},
		{"unbound, both name the product", Device{Modules: []string{"amdgpu", "radeon"}}, []string{"amdgpu", "radeon"}, []string{"amdgpu", "radeon"}},
		{"unbound, only catch-alls", Device{Modules: []string{"nouveau"}}, nil, []string{"nouveau"}},
	} {
		if got := drivers(&c.d, c.specific); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestUSBUevent: a USB device or interface is read from its uevent file when it has every
// field; a malformed or incomplete one falls back to the attribute files.
func TestUSBUevent(t *testing.T) {
	usb := "/sys/devices/pci0000:00/0000:00:14.0/usb3"
	tree := map[string]any{
		"/sys/bus/usb/devices/3-1":     &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:14.0/usb3/3-1"},
		"/sys/bus/usb/devices/3-1:1.0": &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:14.0/usb3/3-1/3-1:1.0"},
		"/sys/bus/usb/devices/3-2":     &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:14.0/usb3/3-2"},
		usb + "/3-1/uevent":            "MAJOR=189\nDEVTYPE=usb_device\nDRIVER=usb\nPRODUCT=bda/8179/0\nTYPE=0/0/0\nBUSNUM=003\n",
		usb + "/3-1/3-1:1.0/uevent":    "DEVTYPE=usb_interface\nDRIVER=r8188eu\nPRODUCT=bda/8179/0\nTYPE=0/0/0\nINTERFACE=255/255/255\nMODALIAS=usb:v0BDAp8179d0000dc00dsc00dp00icFFiscFFipFFin00\n",
		// A uevent without TYPE: the attribute files count.
		usb + "/3-2/uevent":          "DEVTYPE=usb_device\nPRODUCT=46d/c52b/1211\n",
		usb + "/3-2/idVendor":        "046d\n",
		usb + "/3-2/idProduct":       "c52b\n",
		usb + "/3-2/bDeviceClass":    "00\n",
		usb + "/3-2/bDeviceSubClass": "00\n",
		usb + "/3-2/bDeviceProtocol": "00\n",
	}
	inv := detectTree(t, tree, Options{})
	if d := deviceByID(t, inv, "3-1"); d.Vendor != "0bda" || d.Product != "8179" || d.Class != "000000" || d.Driver != "usb" {
		t.Errorf("device from uevent: %+v", d)
	}
	if d := deviceByID(t, inv, "3-1:1.0"); d.Vendor != "0bda" || d.Product != "8179" || d.Class != "ffffff" || d.Driver != "r8188eu" ||
		d.Modalias != "usb:v0BDAp8179d0000dc00dsc00dp00icFFiscFFipFFin00" || d.Parent != "3-1" {
		t.Errorf("interface from uevent: %+v", d)
	}
	if d := deviceByID(t, inv, "3-2"); d.Vendor != "046d" || d.Product != "c52b" || d.Class != "000000" || len(d.Warnings) != 0 {
		t.Errorf("device from its attribute files: %+v", d)
	}
}

// TestPCIUevent: a PCI device with a uevent file is read from it; one without is read by ghw,
// in the same tree, with the same results.
func TestPCIUevent(t *testing.T) {
	tree := map[string]any{}
	fakesys.PCIDevice(tree, "0000:00:02.0", "0x8086", "0x100e", "0x020000", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", "e1000")
	fakesys.PCIDevice(tree, "0000:00:03.0", "0x8086", "0x100e", "0x020000", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", "e1000")
	fakesys.PCIUevent(tree, "0000:00:03.0", "0x8086", "0x100e", "0x020000", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", "e1000")
	fakesys.PCIDevice(tree, "0000:00:04.0", "0x10ec", "0x8168", "0x020000", "pci:v000010ECd00008168sv00001043sd00008677bc02sc00i00", "")
	fakesys.PCIUevent(tree, "0000:00:04.0", "0x10ec", "0x8168", "0x020000", "pci:v000010ECd00008168sv00001043sd00008677bc02sc00i00", "")
	// Its attribute files say otherwise: the uevent file is what counts.
	tree["/sys/devices/pci0000:00/0000:00:04.0/vendor"] = "0xffff\n"
	tree["/sys/bus/pci/drivers/e1000"] = &vfst.Dir{Perm: 0o755} // ghw stats the driver link

	inv := detectTree(t, tree, Options{})
	ghwRead, fromUevent := deviceByID(t, inv, "0000:00:02.0"), deviceByID(t, inv, "0000:00:03.0")
	for _, d := range []*Device{ghwRead, fromUevent} {
		if d.Vendor != "8086" || d.Product != "100e" || d.Class != "020000" || d.Driver != "e1000" ||
			d.Modalias != "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00" || d.SysfsPath != "/sys/devices/pci0000:00/"+d.ID {
			t.Errorf("%s: %+v", d.ID, d)
		}
	}
	if d := deviceByID(t, inv, "0000:00:04.0"); d.Vendor != "10ec" || d.Product != "8168" || d.Driver != "" || d.Class != "020000" {
		t.Errorf("unbound device from uevent: %+v", d)
	}
}
