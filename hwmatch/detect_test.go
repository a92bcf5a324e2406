package hwmatch

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

const fakeRelease = "6.9.0-test"

// pciEntries returns the sysfs files of one PCI device below the root port pci0000:00.
func pciEntries(tree map[string]any, addr, vendor, device, class, modalias, driver string) {
	dir := "/sys/devices/pci0000:00/" + addr
	tree["/sys/bus/pci/devices/"+addr] = &vfst.Symlink{Target: "../../../devices/pci0000:00/" + addr}
	tree[dir+"/vendor"] = vendor + "\n"
	tree[dir+"/device"] = device + "\n"
	tree[dir+"/class"] = class + "\n"
	if modalias != "" {
		tree[dir+"/modalias"] = modalias + "\n"
	}
	if driver != "" {
		tree[dir+"/driver"] = &vfst.Symlink{Target: "../../../bus/pci/drivers/" + driver}
	}
}

// spikeTree is a machine like the spike's: a Realtek USB WLAN adapter whose interface failed to
// load rtw88/rtw8821a_fw.bin, next to PCI devices in every state.
func spikeTree() map[string]any {
	tree := map[string]any{}
	pciEntries(tree, "0000:00:00.0", "0x8086", "0x1237", "0x060000", "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00", "")
	pciEntries(tree, "0000:00:02.0", "0x8086", "0x100e", "0x020000", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", "e1000")
	pciEntries(tree, "0000:00:03.0", "0x1234", "0x11e8", "0x00ff00", "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00", "")
	// ghw rejects this modalias (too short): the device must still be listed, ids from sysfs.
	pciEntries(tree, "0000:00:04.0", "0x10ec", "0xc821", "0x028000", "pci:v000010ECd0000C821", "")
	// A module matches, nothing is bound and the log is silent about it.
	pciEntries(tree, "0000:00:06.0", "0x10ec", "0xc821", "0x028000", "pci:v000010ECd0000C821sv000010ECsd0000C821bc02sc80i00", "")

	usb := "/sys/devices/pci0000:00/0000:00:05.0/usb1"
	tree["/sys/bus/usb/devices/usb1"] = &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:05.0/usb1"}
	tree["/sys/bus/usb/devices/1-4"] = &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:05.0/usb1/1-4"}
	tree["/sys/bus/usb/devices/1-4:1.0"] = &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:05.0/usb1/1-4/1-4:1.0"}
	for dir, attrs := range map[string]map[string]string{
		usb:          {"idVendor": "1d6b", "idProduct": "0002", "bDeviceClass": "09", "bDeviceSubClass": "00", "bDeviceProtocol": "01"},
		usb + "/1-4": {"idVendor": "2357", "idProduct": "11e", "bDeviceClass": "00", "bDeviceSubClass": "00", "bDeviceProtocol": "00"},
		usb + "/1-4/1-4:1.0": {"bInterfaceClass": "ff", "bInterfaceSubClass": "ff", "bInterfaceProtocol": "ff",
			"modalias": "usb:v2357p011Ed0200dc00dsc00dp00icFFiscFFipFFin00"},
	} {
		for name, value := range attrs {
			tree[dir+"/"+name] = value + "\n"
		}
	}
	tree[usb+"/driver"] = &vfst.Symlink{Target: "../../../../bus/usb/drivers/usb"}
	tree[usb+"/1-4/driver"] = &vfst.Symlink{Target: "../../../../../bus/usb/drivers/usb"}

	mods := "/lib/modules/" + fakeRelease
	tree[mods+"/modules.alias"] = strings.Join([]string{
		"# Aliases extracted from modules themselves.",
		"alias usb:v2357p011Ed*dc*dsc*dp*ic*isc*ip*in* rtw88_8821au",
		"alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000",
		"alias pci:v000010ECd0000C821sv*sd*bc*sc*i* rtw88_8821ce",
		"this line is malformed",
	}, "\n") + "\n"
	// Built-in modules declare their aliases and firmware in modules.builtin.modinfo; a module
	// found in modules.alias needs its .ko, which this tree lacks (a per-device warning).
	tree[mods+"/modules.builtin.modinfo"] = "edu_fw.alias=pci:v00001234d000011E8sv*sd*bc*sc*i*\x00edu_fw.firmware=edu/edu.bin\x00edu_fw.firmware=edu/edu-v2.bin\x00"
	tree[mods+"/modules.dep"] = ""
	tree["/dev/kmsg"] = strings.Join([]string{
		"[   48.874800] usb 1-4: new high-speed USB device number 3 using xhci_hcd",
		"[   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2",
		"[   49.065904] rtw_8821au 1-4:1.0: failed to request firmware",
		"[   49.078480] rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22",
		"[   50.000000] edu_fw 0000:00:03.0: firmware: failed to load edu/edu.bin (-2)",
	}, "\n") + "\n"
	return tree
}

func detectTree(t *testing.T, tree map[string]any, opts Options) *Inventory {
	t.Helper()
	fsys, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	opts.Root = hostfs.FromFS(fsys.TempDir(), fsys)
	if opts.KernelRelease == "" {
		opts.KernelRelease = fakeRelease
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
	inv := detectTree(t, spikeTree(), Options{})

	var ids []string
	for _, d := range inv.Devices {
		ids = append(ids, d.ID)
	}
	wantIDs := []string{"0000:00:00.0", "0000:00:02.0", "0000:00:03.0", "0000:00:04.0", "0000:00:06.0", "1-4", "1-4:1.0", "usb1"}
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
	tree := spikeTree()
	for p := range tree {
		if strings.HasPrefix(p, "/lib/modules/") || p == "/dev/kmsg" {
			delete(tree, p)
		}
	}
	inv := detectTree(t, tree, Options{})
	if len(inv.Devices) != 8 {
		t.Fatalf("want all 8 devices without kernel metadata, got %d", len(inv.Devices))
	}
	w := strings.Join(inv.Warnings, "\n")
	for _, want := range []string{"no modules directory for kernel " + fakeRelease, "kernel log:"} {
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
	inv := detectTree(t, spikeTree(), Options{KmsgPath: log})
	if d := deviceByID(t, inv, "1-4:1.0"); !reflect.DeepEqual(d.FirmwareFailed, []string{"rtw88/rtw8821a_fw.bin"}) || d.ProbeFailed {
		t.Errorf("--kmsg file not used: %+v", d)
	}
	if d := deviceByID(t, inv, "0000:00:03.0"); len(d.FirmwareFailed) != 0 {
		t.Errorf("the root's /dev/kmsg was read although --kmsg was given: %+v", d)
	}
}

func TestKernelReleaseFromRoot(t *testing.T) {
	tree := spikeTree()
	tree["/proc/sys/kernel/osrelease"] = fakeRelease + "\n"
	fsys, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	inv, err := Detect(Options{Root: hostfs.FromFS(fsys.TempDir(), fsys)})
	if err != nil {
		t.Fatal(err)
	}
	if inv.KernelRelease != fakeRelease || inv.Kernel == nil {
		t.Errorf("kernel release %q, kernel %v", inv.KernelRelease, inv.Kernel)
	}
}
