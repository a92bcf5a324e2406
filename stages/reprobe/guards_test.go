package reprobe

import (
	"path"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos-firmware/stages/plan"
)

// block adds a block device directory with its /sys/dev/block and /sys/class/block links.
func (r *rig) block(dir, devnum string) string {
	name := path.Base(dir)
	r.tree[dir+"/dev"] = devnum + "\n"
	r.tree["/sys/dev/block/"+devnum] = relLink("/sys/dev/block/"+devnum, dir)
	r.tree["/sys/class/block/"+name] = relLink("/sys/class/block/"+name, dir)
	return dir
}

// partition adds partition n of the disk at diskDir.
func (r *rig) partition(diskDir, name, devnum string) string {
	dir := r.block(path.Join(diskDir, name), devnum)
	r.tree[dir+"/partition"] = "1\n"
	return dir
}

// slave records that the block device at holder is built on the one at slave, as dm and md do.
func (r *rig) slave(holder, slave string) {
	r.tree[holder+"/slaves/"+path.Base(slave)] = relLink(holder+"/slaves/"+path.Base(slave), slave)
	r.tree[slave+"/holders/"+path.Base(holder)] = relLink(slave+"/holders/"+path.Base(holder), holder)
}

// netIf adds the network interface name of the device at devDir.
func (r *rig) netIf(devDir, name, mac string) string {
	dir := path.Join(devDir, "net", name)
	r.tree[dir+"/address"] = mac + "\n"
	if !strings.HasPrefix(devDir, "/sys/devices/virtual") {
		r.tree[dir+"/device"] = relLink(dir+"/device", devDir)
	}
	r.tree["/sys/class/net/"+name] = relLink("/sys/class/net/"+name, dir)
	return dir
}

func guardsOf(t *testing.T, r *rig) (*Guards, *kernel) {
	t.Helper()
	k := r.start()
	return FindGuards(k.root, r.inventory(), ""), k
}

// checkGuards compares the reason of each device id with want ("" for none).
func checkGuards(t *testing.T, r *rig, g *Guards, want map[string]string) {
	t.Helper()
	for id, reason := range want {
		d := r.devs[id]
		if d == nil {
			t.Fatalf("no device %s", id)
		}
		if got := g.Reason(id, d.dir); got != reason {
			t.Errorf("%s: guard\n got %q\nwant %q", id, got, reason)
		}
	}
}

const pciRoot = "/sys/devices/pci0000:00"

// storageRig: the Kairos layout (/sysroot on loop0 from cOS/active.img on COS_STATE), /oem on
// LUKS on a USB stick, /usr/local on btrfs on NVMe behind a bridge, an unlocked but unmounted
// dm device on a SAS disk, swap on a second SATA controller, and devices that hold nothing.
func storageRig(t *testing.T) *rig {
	r := newRig(t)
	r.pci(pciRoot, "0000:00:1f.2", "010601", "ahci", true)
	sda := r.block(pciRoot+"/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", "8:0")
	r.partition(sda, "sda2", "8:2")
	r.partition(sda, "sda3", "8:3")
	loop0 := r.block("/sys/devices/virtual/block/loop0", "7:0")
	r.tree[loop0+"/loop/backing_file"] = "/run/initramfs/cos-state/cOS/active.img\n"

	r.pci(pciRoot, "0000:00:14.0", "0c0330", "xhci_hcd", true)
	hub2 := pciRoot + "/0000:00:14.0/usb2"
	stick := r.usbIface(hub2+"/2-1", "2-1:1.0", "usb-storage", true)
	r.usb(hub2, "2-1", stick)
	sdb := r.block(stick.dir+"/host6/target6:0:0/6:0:0:0/block/sdb", "8:16")
	sdb1 := r.partition(sdb, "sdb1", "8:17")
	dm0 := r.block("/sys/devices/virtual/block/dm-0", "253:0")
	r.slave(dm0, sdb1)
	wifi := r.usbIface(hub2+"/2-2", "2-2:1.0", "rtw_8821au", false)
	r.usb(hub2, "2-2", wifi)

	r.pci(pciRoot, "0000:00:1d.0", "060400", "pcieport", true)
	r.pci(pciRoot+"/0000:00:1d.0", "0000:3d:00.0", "010802", "nvme", true)
	nvme := r.block(pciRoot+"/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1", "259:0")
	r.partition(nvme, "nvme0n1p1", "259:1")

	r.pci(pciRoot, "0000:00:1c.0", "060400", "pcieport", true)
	r.pci(pciRoot+"/0000:00:1c.0", "0000:05:00.0", "010700", "mpt3sas", true)
	sdc := r.block(pciRoot+"/0000:00:1c.0/0000:05:00.0/host2/port-2:0/end_device-2:0/target2:0:0/2:0:0:0/block/sdc", "8:32")
	dm1 := r.block("/sys/devices/virtual/block/dm-1", "253:1")
	r.slave(dm1, sdc)

	r.pci(pciRoot, "0000:06:00.0", "010601", "ahci", true)
	sdd := r.block(pciRoot+"/0000:06:00.0/ata3/host4/target4:0:0/4:0:0:0/block/sdd", "8:48")
	r.partition(sdd, "sdd1", "8:49")

	r.pci(pciRoot, "0000:00:03.0", "00ff00", "kfwtest", false)

	// /sysroot is listed before the file system holding its image so that the reason shows
	// the way through the loop device.
	r.tree["/proc/self/mountinfo"] = strings.Join([]string{
		"22 1 0:1 / / rw - rootfs rootfs rw",
		"23 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw",
		"24 22 0:23 / /run rw,nosuid,nodev - tmpfs tmpfs rw,mode=755",
		"30 22 7:0 / /sysroot ro,relatime - ext4 /dev/loop0 ro",
		"25 24 8:3 / /run/initramfs/cos-state rw,relatime - ext4 /dev/sda3 rw",
		"31 30 253:0 / /sysroot/oem rw,relatime - ext4 /dev/mapper/oem rw",
		`32 30 0:45 /@ /sysroot/usr/local rw,relatime shared:1 - btrfs /dev/nvme0n1p1 rw,space_cache=v2`,
		"33 30 0:46 / /sysroot/etc rw - overlay overlay rw,lowerdir=/sysroot/etc,upperdir=/run/overlay/etc",
	}, "\n") + "\n"
	r.tree["/proc/swaps"] = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdd1                               partition\t8388604\t\t0\t\t-2\n"
	return r
}

func TestStorageGuards(t *testing.T) {
	r := storageRig(t)
	g, _ := guardsOf(t, r)
	checkGuards(t, r, g, map[string]string{
		"0000:00:1f.2": "holds the storage of mounted /sysroot (loop0 → sda3 → sda → 0000:00:1f.2)",
		"2-1:1.0":      "holds the storage of mounted /sysroot/oem (dm-0 → sdb1 → sdb → 2-1:1.0)",
		"2-1":          "holds the storage of mounted /sysroot/oem (dm-0 → sdb1 → sdb → 2-1)",
		"0000:00:14.0": "holds the storage of mounted /sysroot/oem (dm-0 → sdb1 → sdb → 0000:00:14.0)",
		"0000:00:1d.0": "holds the storage of mounted /sysroot/usr/local (nvme0n1p1 → nvme0n1 → 0000:00:1d.0)",
		"0000:3d:00.0": "holds the storage of mounted /sysroot/usr/local (nvme0n1p1 → nvme0n1 → 0000:3d:00.0)",
		"0000:00:1c.0": "holds the storage of dm-1 (dm-1 → sdc → 0000:00:1c.0)",
		"0000:05:00.0": "holds the storage of dm-1 (dm-1 → sdc → 0000:05:00.0)",
		"0000:06:00.0": "holds the storage of swap /dev/sdd1 (sdd1 → sdd → 0000:06:00.0)",
		"2-2":          "",
		"2-2:1.0":      "",
		"0000:00:03.0": "",
	})
}

// Without mountinfo nothing tells which storage is in use: every device above a block device
// is guarded.
func TestStorageGuardsWithoutMountinfo(t *testing.T) {
	r := storageRig(t)
	delete(r.tree, "/proc/self/mountinfo")
	g, k := guardsOf(t, r)
	got := g.Reason("0000:06:00.0", r.devs["0000:06:00.0"].dir)
	want := "may hold mounted storage, which cannot be told (cannot read " + k.dir +
		"/proc/self/mountinfo: no such file or directory) (sdd → 0000:06:00.0)"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := g.Reason("2-2:1.0", r.devs["2-2:1.0"].dir); got != "" {
		t.Errorf("2-2:1.0 holds no block device, guarded: %q", got)
	}
}

// A mounted block device that sysfs does not show widens the guard the same way.
func TestStorageGuardsWithAnUnknownMount(t *testing.T) {
	r := newRig(t)
	r.pci(pciRoot, "0000:00:1f.2", "010601", "ahci", true)
	r.block(pciRoot+"/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", "8:0")
	r.tree["/proc/self/mountinfo"] = "40 1 8:65 / /data rw - xfs /dev/sde1 rw\n"
	g, _ := guardsOf(t, r)
	got := g.Reason("0000:00:1f.2", r.devs["0000:00:1f.2"].dir)
	if !strings.HasPrefix(got, "may hold the storage of mounted /data, whose block device 8:65 (/dev/sde1) is not in sysfs (") ||
		!strings.HasSuffix(got, "(sda → 0000:00:1f.2)") {
		t.Errorf("got %q", got)
	}
}

// Run skips a device that holds storage and touches it only when reprobe.force names it.
func TestStorageGuardSkipsAndForceLifts(t *testing.T) {
	item := plan.Reprobe{Device: "0000:00:1f.2", Bus: "pci", Method: plan.MethodRebind, Fallbacks: []string{plan.MethodPCIRescan}}
	reason := "holds the storage of mounted /sysroot (loop0 → sda3 → sda → 0000:00:1f.2)"

	res, writes := run(t, storageRig(t), item, reprobeCfg(3, time.Second))
	checkWrites(t, writes)
	checkResult(t, res, Result{Device: "0000:00:1f.2", Bus: "pci", Outcome: OutcomeSkipped,
		Reason: "guarded: " + reason + "; list 0000:00:1f.2 in reprobe.force to re-probe it anyway",
		Tried:  []string{}, FirmwareFailed: []string{}, Guard: reason})

	cfg := reprobeCfg(3, time.Second)
	cfg.Force = []string{"0000:00:1f.2"}
	res, writes = run(t, storageRig(t), item, cfg)
	checkWrites(t, writes,
		"write /sys/bus/pci/drivers/ahci/unbind 0000:00:1f.2",
		"write /sys/bus/pci/drivers_probe 0000:00:1f.2")
	if res.Outcome != OutcomeBound || res.Guard != "lifted by reprobe.force: "+reason {
		t.Errorf("forced: %+v", res)
	}
}

// Re-enumerating a USB device removes all its interfaces: when another interface of the same
// device holds storage, usb-reenumerate is left out, and only forcing the device allows it.
func TestUSBReenumerateOfACompositeDeviceWithStorage(t *testing.T) {
	build := func() *rig {
		r := newRig(t)
		r.pci(pciRoot, "0000:00:14.0", "0c0330", "xhci_hcd", true)
		wlan := r.usbIface(hub+"/1-4", "1-4:1.0", "rtw_8821au", false)
		wlan.probe = func(trigger string) probeResult { return probeResult{bind: trigger == "usb-bind"} }
		disk := r.usbIface(hub+"/1-4", "1-4:1.1", "usb-storage", true)
		r.usb(hub, "1-4", wlan, disk)
		sdb := r.block(disk.dir+"/host6/target6:0:0/6:0:0:0/block/sdb", "8:16")
		r.partition(sdb, "sdb1", "8:17")
		r.tree["/proc/self/mountinfo"] = "31 1 8:17 / /oem rw - ext4 /dev/sdb1 rw\n"
		return r
	}
	res, writes := run(t, build(), spikeItem, reprobeCfg(2, time.Second))
	checkWrites(t, writes,
		"write /sys/bus/usb/drivers_probe 1-4:1.0",
		"write /sys/bus/usb/drivers_probe 1-4:1.0")
	if res.Outcome != OutcomeStillUnbound || !strings.Contains(res.Reason,
		"usb-reenumerate left out: it removes every interface of 1-4, which holds the storage of mounted /oem (sdb1 → sdb → 1-4)") {
		t.Errorf("got %+v", res)
	}

	cfg := reprobeCfg(2, time.Second)
	cfg.Force = []string{"1-4"}
	res, writes = run(t, build(), spikeItem, cfg)
	checkWrites(t, writes,
		"write /sys/bus/usb/drivers_probe 1-4:1.0",
		"write /sys/bus/usb/drivers/usb/unbind 1-4",
		"write /sys/bus/usb/drivers/usb/bind 1-4")
	if res.Outcome != OutcomeBound || res.Method != plan.MethodUSBReenumerate {
		t.Errorf("forced: %+v", res)
	}
}

// networkRig: two wired NICs (eth0, eth1), a bridge over eth1, a bound NIC without an
// interface, an unbound Wi-Fi card that lacks its firmware, and a USB Ethernet adapter.
func networkRig(t *testing.T) *rig {
	r := newRig(t)
	eth0 := r.pci(pciRoot, "0000:00:19.0", "020000", "e1000e", true)
	r.netIf(eth0.dir, "eth0", "52:54:00:12:34:56")
	eth1 := r.pci(pciRoot, "0000:00:1a.0", "020000", "igb", true)
	eth1Dir := r.netIf(eth1.dir, "eth1", "52:54:00:12:34:57")
	br0 := r.netIf("/sys/devices/virtual", "br0", "52:54:00:12:34:57")
	r.tree[br0+"/lower_eth1"] = relLink(br0+"/lower_eth1", eth1Dir)
	r.netIf("/sys/devices/virtual", "lo", "00:00:00:00:00:00")
	r.pci(pciRoot, "0000:04:00.0", "020000", "mlx5_core", true)
	r.pci(pciRoot, "0000:03:00.0", "028000", "iwlwifi", false)
	r.pci(pciRoot, "0000:00:14.0", "0c0330", "xhci_hcd", true)
	usbNet := r.usbIface(hub+"/1-4", "1-4:1.0", "cdc_ether", true)
	r.usb(hub, "1-4", usbNet)
	r.netIf(usbNet.dir, "usb0", "02:00:00:aa:bb:cc")
	return r
}

func TestNetworkGuards(t *testing.T) {
	ids := []string{"0000:00:19.0", "0000:00:1a.0", "0000:04:00.0", "0000:03:00.0", "1-4:1.0", "1-4", "0000:00:14.0"}
	every := []string{"0000:00:19.0", "0000:00:1a.0", "0000:04:00.0", "1-4:1.0", "1-4", "0000:00:14.0"}
	for _, tc := range []struct {
		cmdline string
		guarded []string
	}{
		{"root=LABEL=COS_ACTIVE", nil},
		{"ip=off root=LABEL=COS_ACTIVE", nil},
		{"ifname=eth0:52:54:00:12:34:56", nil},
		{"ip=eth0:dhcp", []string{"0000:00:19.0"}},
		{"ip=192.168.1.10::192.168.1.1:255.255.255.0:node1:eth1:none", []string{"0000:00:1a.0"}},
		{"ip=[2001:db8::2]::[2001:db8::1]:64:node1:eth0:none", []string{"0000:00:19.0"}},
		{"ip=:::::eth0:dhcp root=/dev/nfs nfsroot=10.0.0.1:/srv/root", []string{"0000:00:19.0"}},
		{"ip=dhcp BOOTIF=01-52-54-00-12-34-57", []string{"0000:00:1a.0"}},
		{"ip=dhcp ifname=eth0:52:54:00:12:34:56", []string{"0000:00:19.0"}},
		{"ip=usb0:dhcp", []string{"1-4:1.0", "1-4", "0000:00:14.0"}},
		{"ip=br0:dhcp", []string{"0000:00:1a.0"}},
		{"rd.iscsi.initiator=iqn.2024-01.io.kairos:node1 ip=eth1:dhcp", []string{"0000:00:1a.0"}},
		{"ip=dhcp", every},
		{"root=/dev/nfs nfsroot=10.0.0.1:/srv/root", every},
		{"root=nfs:10.0.0.1:/srv/root", every},
		{"netroot=iscsi:10.0.0.1::::iqn.2009-06.dracut:target0", every},
		{"rd.iscsi.firmware=1", every},
		{"rd.neednet=1", every},
		{"ip=eth9:dhcp", every},
	} {
		t.Run(tc.cmdline, func(t *testing.T) {
			r := networkRig(t)
			r.tree["/proc/cmdline"] = "BOOT_IMAGE=/vmlinuz console=ttyS0 " + tc.cmdline + "\n"
			g, _ := guardsOf(t, r)
			for _, id := range ids {
				want := false
				for _, w := range tc.guarded {
					want = want || w == id
				}
				if got := g.Reason(id, r.devs[id].dir); (got != "") != want {
					t.Errorf("%s: guarded %v (%q), want %v", id, got != "", got, want)
				}
			}
		})
	}
}

func TestNetworkGuardReasons(t *testing.T) {
	for _, tc := range []struct {
		cmdline, id, want string
	}{
		{"ip=eth0:dhcp", "0000:00:19.0", "carries eth0, the interface ip=eth0:dhcp names (eth0 → 0000:00:19.0)"},
		{"ip=br0:dhcp", "0000:00:1a.0", "carries br0, the interface ip=br0:dhcp names (br0 → eth1 → 0000:00:1a.0)"},
		{"ip=usb0:dhcp", "0000:00:14.0", "carries usb0, the interface ip=usb0:dhcp names (usb0 → 0000:00:14.0)"},
		{"ip=dhcp BOOTIF=01-52-54-00-12-34-57", "0000:00:1a.0",
			"carries eth1, the interface with address 52:54:00:12:34:57 that BOOTIF=01-52-54-00-12-34-57 names (eth1 → 0000:00:1a.0)"},
		{"netroot=iscsi:10.0.0.1::::iqn.2009-06.dracut:target0", "0000:00:19.0",
			"carries network interface eth0, and netroot=iscsi:10.0.0.1::::iqn.2009-06.dracut:target0 names no interface: every network device is guarded (eth0 → 0000:00:19.0)"},
		{"ip=dhcp", "0000:04:00.0", "is a network device bound to mlx5_core, and ip=dhcp names no interface: every network device is guarded"},
		{"ip=eth9:dhcp", "0000:00:19.0",
			"carries network interface eth0, and ip=eth9:dhcp names eth9, which is not here: every network device is guarded (eth0 → 0000:00:19.0)"},
	} {
		r := networkRig(t)
		r.tree["/proc/cmdline"] = tc.cmdline + "\n"
		g, _ := guardsOf(t, r)
		if got := g.Reason(tc.id, r.devs[tc.id].dir); got != tc.want {
			t.Errorf("%s, %s:\n got %q\nwant %q", tc.cmdline, tc.id, got, tc.want)
		}
	}
}

// dracut reads /etc/cmdline.d/*.conf as command line too.
func TestNetworkGuardFromDracutCmdlineD(t *testing.T) {
	r := networkRig(t)
	r.tree["/etc/cmdline.d/40-network.conf"] = "# generated\nip=eth1:dhcp rd.neednet=1\n"
	g, _ := guardsOf(t, r)
	if g.Reason("0000:00:1a.0", r.devs["0000:00:1a.0"].dir) == "" || g.Reason("0000:00:19.0", r.devs["0000:00:19.0"].dir) != "" {
		t.Error("ip=eth1:dhcp in /etc/cmdline.d should guard eth1's device and only it")
	}
}

func TestNetworkGuardWithoutCmdline(t *testing.T) {
	r := networkRig(t)
	delete(r.tree, "/proc/cmdline")
	g, k := guardsOf(t, r)
	want := "carries network interface eth0, and whether the network root uses it cannot be told (cannot read " +
		k.dir + "/proc/cmdline: no such file or directory) (eth0 → 0000:00:19.0)"
	if got := g.Reason("0000:00:19.0", r.devs["0000:00:19.0"].dir); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := g.Reason("0000:03:00.0", r.devs["0000:03:00.0"].dir); got != "" {
		t.Errorf("an unbound NIC carries nothing, guarded: %q", got)
	}
}

// The NIC of a network root is skipped; the Wi-Fi card that lacks firmware is re-probed.
func TestNetworkGuardInRun(t *testing.T) {
	r := networkRig(t)
	r.tree["/proc/cmdline"] = "root=nfs:10.0.0.1:/srv/root ip=eth0:dhcp\n"
	k := r.start()
	items := []plan.Reprobe{
		{Device: "0000:00:19.0", Bus: "pci", Method: plan.MethodRebind, Fallbacks: []string{plan.MethodPCIRescan}},
		{Device: "0000:03:00.0", Bus: "pci", Method: plan.MethodDriversProbe, Fallbacks: []string{plan.MethodPCIRescan}},
	}
	results := Run(k.root, k.ops, r.inventory(), items, reprobeCfg(3, time.Second), Options{})
	checkWrites(t, k.writes(), "write /sys/bus/pci/drivers_probe 0000:03:00.0")
	if results[0].Outcome != OutcomeSkipped || results[0].Guard != "carries eth0, the interface ip=eth0:dhcp names (eth0 → 0000:00:19.0)" ||
		results[1].Outcome != OutcomeBound {
		t.Errorf("got %+v", results)
	}
}

// consoleRig: a discrete GPU behind a bridge that the firmware booted on (boot_vga 1), and an
// integrated one that carries fb0.
func consoleRig(t *testing.T) *rig {
	r := newRig(t)
	r.pci(pciRoot, "0000:00:01.0", "060400", "pcieport", true)
	dgpu := r.pci(pciRoot+"/0000:00:01.0", "0000:01:00.0", "030000", "nouveau", true)
	r.tree[dgpu.dir+"/boot_vga"] = "1\n"
	igpu := r.pci(pciRoot, "0000:00:02.0", "030000", "i915", true)
	r.tree[igpu.dir+"/boot_vga"] = "0\n"
	fb0 := igpu.dir + "/graphics/fb0"
	r.tree[fb0+"/device"] = relLink(fb0+"/device", igpu.dir)
	r.tree["/sys/class/graphics/fb0"] = relLink("/sys/class/graphics/fb0", fb0)
	r.pci(pciRoot, "0000:00:03.0", "00ff00", "kfwtest", false)
	return r
}

func TestConsoleGuards(t *testing.T) {
	r := consoleRig(t)
	g, _ := guardsOf(t, r)
	checkGuards(t, r, g, map[string]string{
		"0000:01:00.0": "drives the boot console (boot_vga is 1)",
		"0000:00:01.0": "drives the boot console (boot_vga is 1) (0000:01:00.0 → 0000:00:01.0)",
		"0000:00:02.0": "drives the console framebuffer fb0 (fb0 → 0000:00:02.0)",
		"0000:00:03.0": "",
	})
}

func TestConsoleGuardForced(t *testing.T) {
	item := plan.Reprobe{Device: "0000:00:02.0", Bus: "pci", Method: plan.MethodRebind}
	res, writes := run(t, consoleRig(t), item, reprobeCfg(1, time.Second))
	checkWrites(t, writes)
	if res.Outcome != OutcomeSkipped {
		t.Errorf("got %+v", res)
	}
	cfg := reprobeCfg(1, time.Second)
	cfg.Force = []string{"0000:00:02.0"}
	res, writes = run(t, consoleRig(t), item, cfg)
	checkWrites(t, writes,
		"write /sys/bus/pci/drivers/i915/unbind 0000:00:02.0",
		"write /sys/bus/pci/drivers_probe 0000:00:02.0")
	if res.Outcome != OutcomeBound || res.Guard != "lifted by reprobe.force: drives the console framebuffer fb0 (fb0 → 0000:00:02.0)" {
		t.Errorf("forced: %+v", res)
	}
}

func TestReadMountinfoUnescapes(t *testing.T) {
	r := newRig(t)
	r.tree["/proc/self/mountinfo"] = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/disk/by-label/my\\134disk rw\n" +
		"malformed line\n" +
		"37 35 98:1 / /x rw shared:2 master:3 - ext4 /dev/sdz1 rw\n"
	k := r.start()
	got, err := readMountinfo(k.root)
	want := []mountEntry{{"/mnt two", "98:0", `/dev/disk/by-label/my\disk`}, {"/x", "98:1", "/dev/sdz1"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v\nwant %+v", got, err, want)
	}
}
