package tests

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	byteorder "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	vfs "github.com/twpayne/go-vfs/v4"
	"github.com/twpayne/go-vfs/v4/vfst"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch/fakesys"
	"github.com/kairos-io/kairos-firmware/hwmatch/kmod/kmodtest"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/stages/apply"
	"github.com/kairos-io/kairos-firmware/stages/merge"
	"github.com/kairos-io/kairos-firmware/stages/plan"
	"github.com/kairos-io/kairos-firmware/stages/report"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// The apply benchmarks (docs/development.md, "Apply benchmarks"). Figures are reported, never
// asserted.
//
// BenchmarkApplyHost and BenchmarkMergeVsSystemdSysext make real loop devices, erofs and
// overlay mounts. Each runs in a child process (this test binary again) in a mount namespace of
// its own whose mounts are all private (unshare --mount --propagation private), as the real
// kernel tests of stages/merge do: nothing reaches the host's mounts, and whatever is left goes
// with the namespace. The child runs the benchmark with the parent's -benchtime through b.Loop
// and prints its figures; the parent reports them as its own (ns/op included). No attribute of
// the host is written: firmware_class.path and the re-probe's drivers_probe are files of the
// fixture, and benchOps refuses any write outside it.

// benchNSEnv names the benchmark the child process runs inside the namespace.
const benchNSEnv = "KAIROS_FIRMWARE_BENCH_NS"

// benchInPrivateNS returns true in the child, where the benchmark goes on. In the parent it
// checks what the child needs (skipping, or failing under CI, when something is missing), runs
// the child and reports its metrics, and returns false.
func benchInPrivateNS(b *testing.B, tools ...string) bool {
	b.Helper()
	if os.Getenv(benchNSEnv) == b.Name() {
		return true
	}
	if os.Geteuid() != 0 {
		testkernel.Missing(b, "mounting needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testkernel.Missing(b, "no loop devices: %v", err)
	}
	for _, fs := range []string{"overlay", "erofs"} {
		if !benchKernelHas(fs) {
			testkernel.Missing(b, "the kernel has no %s filesystem", fs)
		}
	}
	unshare := testkernel.Tool(b, "unshare")
	imagetest.Tool(b, "mkfs.erofs", "erofs-utils")
	testkernel.ModulesDir(b)
	for _, tool := range tools {
		testkernel.Tool(b, tool)
	}

	args := []string{"--mount", "--propagation", "private", os.Args[0],
		"-test.run=^$", "-test.bench=^" + b.Name() + "$", "-test.count=1",
		"-test.benchtime=" + flagValue("test.benchtime", "1s")}
	if flagValue("test.benchmem", "false") == "true" {
		args = append(args, "-test.benchmem")
	}
	// -cpuprofile F, -memprofile F and -trace F profile the child too, into F.child: the parent only
	// waits for it.
	for _, prof := range []string{"cpuprofile", "memprofile", "trace"} {
		if file := flagValue("test."+prof, ""); file != "" {
			args = append(args, "-test."+prof+"="+file+".child")
		}
	}
	var out []byte
	for b.Loop() {
		if out != nil {
			continue // the child ran every iteration
		}
		cmd := exec.Command(unshare, args...)
		cmd.Env = append(os.Environ(), benchNSEnv+"="+b.Name())
		var err error
		out, err = cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("the benchmark in a private mount namespace: %v\n%s", err, out)
		}
	}
	var metrics [][2]string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && (f[0] == b.Name() || strings.HasPrefix(f[0], b.Name()+"-")):
			metrics = nil
			for i := 2; i+1 < len(f); i += 2 {
				metrics = append(metrics, [2]string{f[i], f[i+1]})
			}
		case len(f) == 0 || boilerplate[f[0]]:
		default:
			b.Logf("child: %s", strings.TrimSpace(line))
		}
	}
	if metrics == nil {
		b.Fatalf("the child printed no result for %s:\n%s", b.Name(), out)
	}
	for _, m := range metrics {
		v, err := strconv.ParseFloat(m[0], 64)
		if err != nil {
			b.Fatalf("child metric %q %q: %v", m[0], m[1], err)
		}
		b.ReportMetric(v, m[1])
	}
	return false
}

// boilerplate are the first words of the lines a benchmark binary prints around the results.
var boilerplate = map[string]bool{"goos:": true, "goarch:": true, "pkg:": true, "cpu:": true, "PASS": true, "ok": true}

// flagValue is the value of a flag of the testing package, or def.
func flagValue(name, def string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return def
}

// benchKernelHas says /proc/filesystems lists fs.
func benchKernelHas(fs string) bool {
	data, _ := os.ReadFile("/proc/filesystems")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == fs {
			return true
		}
	}
	return false
}

// benchTmpfs mounts a tmpfs on a new directory of the benchmark's, unmounted at cleanup (the
// namespace takes it anyway when the child exits).
func benchTmpfs(b *testing.B, dir string) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// benchOps is sysops.Linux that refuses attribute writes outside the fixture, replaces the
// content of the fixture's firmware_class.path file on each write as sysfs would (it reads
// back with a newline), and notes the clock readings apply.Run and its finish step take
// themselves: those bound its steps, so the steps' durations are known to the nanosecond
// instead of the report's whole milliseconds.
type benchOps struct {
	sysops.Linux
	allow string
	attr  string
	marks []time.Time
}

const (
	applyRun    = "github.com/kairos-io/kairos-firmware/stages/apply.Run"
	applyFinish = "github.com/kairos-io/kairos-firmware/stages/apply.finish"
)

func (o *benchOps) Now() time.Time {
	now := time.Now()
	var pc [1]uintptr
	if runtime.Callers(2, pc[:]) == 1 {
		frame, _ := runtime.CallersFrames(pc[:]).Next()
		if frame.Function == applyRun || frame.Function == applyFinish {
			o.marks = append(o.marks, now)
		}
	}
	return now
}

func (o *benchOps) WriteAttr(path, value string) error {
	if !strings.HasPrefix(path, o.allow+"/") {
		return fmt.Errorf("the benchmark writes only under %s, not %s", o.allow, path)
	}
	if path == o.attr {
		return os.WriteFile(path, []byte(value+"\n"), 0o644)
	}
	return o.Linux.WriteAttr(path, value)
}

// applySteps are the durations of one apply.Run.
type applySteps struct {
	gather, plan, merge, reprobe, bom, total time.Duration
}

// steps reads the durations of the last apply.Run from its clock readings: started, then the
// bounds of gather, plan, merge, re-probe and bill of materials, then finish's. They are the
// very readings the report's timings come from, which is checked; when they are not what this
// expects (apply changed), the report's milliseconds are used and exact is false.
func (o *benchOps) steps(t report.Timings) (s applySteps, exact bool) {
	m := o.marks
	if len(m) == 11 {
		s = applySteps{gather: m[2].Sub(m[1]), plan: m[3].Sub(m[2]), merge: m[5].Sub(m[4]),
			reprobe: m[7].Sub(m[6]), bom: m[9].Sub(m[8]), total: m[10].Sub(m[0])}
		if s.gather.Milliseconds() == t.GatherMS && s.plan.Milliseconds() == t.PlanMS && s.merge.Milliseconds() == t.MergeMS &&
			s.reprobe.Milliseconds() == t.ReprobeMS && s.bom.Milliseconds() == t.BOMMS && s.total.Milliseconds() == t.TotalMS {
			return s, true
		}
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	return applySteps{ms(t.GatherMS), ms(t.PlanMS), ms(t.MergeMS), ms(t.ReprobeMS), ms(t.BOMMS), ms(t.TotalMS)}, false
}

// The fixture: a machine of 100 devices and a sysroot whose Kairos store holds 10 firmware
// images, all selected.
const (
	benchImages      = 10
	benchPCI         = 70
	benchFilesPerImg = 50
	benchSysroot     = "/sysroot"
	// benchFirmwareClassPath is the fixture's firmware_class.path, a plain file.
	benchFirmwareClassPath = "/sys/module/firmware_class/parameters/path"
)

// benchDriver is a driver of the fake machine: firmware drivers (kfwb_fw<k>) declare three files
// that image fw-vendor<k> holds; plain ones (kfwb_plain<m>) declare none. Half of each kind are
// loadable modules (modules.alias, modules.dep, a .ko with its .modinfo), half built in
// (modules.builtin.modinfo).
type benchDriver struct {
	name     string
	firmware []string
	loadable bool
	aliases  []string
}

func benchFirmware(k int) []string {
	return []string{fmt.Sprintf("vendor%d/fw%d-a.bin", k, k), fmt.Sprintf("vendor%d/fw%d-b.bin", k, k), fmt.Sprintf("vendor%d/fw%d-c.bin", k, k)}
}

// applyFixture is the namespace's view of the benchmark system.
type applyFixture struct {
	base string // the tmpfs everything lives on
	dir  string // the running root (the initrd): devices, kernel, kernel log, /run
	kmsg string // its kernel log, a file of /dev/kmsg records
	root *hostfs.Root
	// images are the built image files, by name.
	images map[string]string
	// want is the module each synthetic device resolves to ("" for none).
	want    map[string]string
	failing int
	sysroot map[string]string // the sysroot's files, store excluded
}

// newApplyFixture builds the machine on a tmpfs of the namespace: 70 PCI devices and 30 USB
// devices and interfaces (fakesys helpers; sysfs attributes are plain files, so a write to
// drivers_probe lands in a file and binds nothing), Debian 6.1's real module metadata with this
// machine's drivers added, a kernel log of about 1,000 records in which 12 devices failed to load
// firmware, and a sysroot with the Kairos store of 10 erofs images (5 with an embedded
// manifest, 5 without), enabled for the active boot by absolute links.
func newApplyFixture(b *testing.B) *applyFixture {
	b.Helper()
	base := filepath.Join(b.TempDir(), "fixture")
	benchTmpfs(b, base)
	fx := &applyFixture{base: base, dir: filepath.Join(base, "root"), kmsg: filepath.Join(base, "kmsg"), images: map[string]string{}, want: map[string]string{}}

	var drivers []*benchDriver
	for k := range benchImages {
		drivers = append(drivers, &benchDriver{name: fmt.Sprintf("kfwb_fw%d", k), firmware: benchFirmware(k), loadable: k < 5})
	}
	for m := range 10 {
		drivers = append(drivers, &benchDriver{name: fmt.Sprintf("kfwb_plain%d", m), loadable: m < 5})
	}
	fw := func(k int) *benchDriver { return drivers[k] }
	plainDrv := func(m int) *benchDriver { return drivers[benchImages+m] }

	tree := map[string]any{}
	var log kmsgWriter
	log.boot()
	failed := func(drv, id, subsystem, device string, k int) {
		log.record(subsystem, device, "%s %s: Direct firmware load for %s failed with error -2", drv, id, benchFirmware(k)[0])
		log.record(subsystem, device, "%s %s: probe with driver %s failed with error -2", drv, id, drv)
		fx.failing++
	}

	// PCI: 8 bridges without a driver; 20 firmware devices, two per firmware driver, of which
	// one each of kfwb_fw0..7 failed; 2 xHCI controllers; 30 bound to plain drivers; 10 that no
	// module serves.
	for i := range benchPCI {
		addr := fmt.Sprintf("0000:00:%02x.%d", i/8, i%8)
		devID := 0x1000 + i
		modalias := func(class int) string {
			return fmt.Sprintf("pci:v0000FB00d%08Xsv0000FB00sd%08Xbc%02Xsc%02Xi%02X", devID, i, class>>16, class>>8&0xff, class&0xff)
		}
		pattern := fmt.Sprintf("pci:v0000FB00d%08Xsv*sd*bc*sc*i*", devID)
		var drv *benchDriver
		class, bound := 0x060400, false
		switch {
		case i < 8:
		case i < 28:
			k := (i - 8) / 2
			drv, class, bound = fw(k), 0x028000, !(i%2 == 0 && k < 8)
			if !bound {
				failed(drv.name, addr, "pci", "+pci:"+addr, k)
			}
		case i < 30:
		case i < 60:
			drv, class, bound = plainDrv(i%10), 0x020000, true
		default:
			class = 0x118000
		}
		driver := ""
		fx.want["pci/"+addr] = ""
		if drv != nil {
			drv.aliases = append(drv.aliases, pattern)
			fx.want["pci/"+addr] = drv.name
			if bound {
				driver = drv.name
			}
		}
		if i == 28 || i == 29 {
			// The xHCI controllers: Debian's xhci_pci serves them by class.
			class, driver, fx.want["pci/"+addr] = 0x0c0330, "xhci_hcd", "xhci_pci"
		}
		fakesys.PCIDevice(tree, addr, "0xfb00", fmt.Sprintf("0x%04x", devID), fmt.Sprintf("0x%06x", class), modalias(class), driver)
		fakesys.PCIUevent(tree, addr, "0xfb00", fmt.Sprintf("0x%04x", devID), fmt.Sprintf("0x%06x", class), modalias(class), driver)
		log.record("pci", "+pci:"+addr, "pci %s: [fb00:%04x] type 00 class 0x%06x", addr, devID, class)
		log.record("pci", "+pci:"+addr, "pci %s: reg 0x10: [mem 0xfe%03x000-0xfe%03xfff 64bit]", addr, i, i)
		if driver != "" {
			log.record("pci", "+pci:"+addr, "%s %s: enabling device (0000 -> 0002)", driver, addr)
		}
	}

	// USB: two root hubs below the xHCI controllers, each with its hub interface; 13 devices
	// with one interface each: four served by kfwb_fw8 and kfwb_fw9 failed, six are bound to
	// plain drivers, three have no driver.
	port := 0
	for bus, ctrl := range []string{"0000:00:03.4", "0000:00:03.5"} {
		hub := fmt.Sprintf("usb%d", bus+1)
		hubDir := "/sys/devices/pci0000:00/" + ctrl + "/" + hub
		usbEntry(tree, hub, hubDir, map[string]string{"idVendor": "1d6b", "idProduct": fmt.Sprintf("%04x", 2+bus), "bDeviceClass": "09", "bDeviceSubClass": "00", "bDeviceProtocol": "01"}, "usb")
		intf := fmt.Sprintf("%d-0:1.0", bus+1)
		fx.want["usb/"+intf] = "usbcore"
		usbEntry(tree, intf, hubDir+"/"+intf, map[string]string{"bInterfaceClass": "09", "bInterfaceSubClass": "00", "bInterfaceProtocol": "00",
			"modalias": fmt.Sprintf("usb:v1D6Bp%04Xd0601dc09dsc00dp01ic09isc00ip00in00", 2+bus)}, "hub")
		for n := 1; n <= 7-bus; n++ {
			j := port
			port++
			dev := fmt.Sprintf("%d-%d", bus+1, n)
			product := 0x0100 + j
			usbEntry(tree, dev, hubDir+"/"+dev, map[string]string{"idVendor": "fb10", "idProduct": fmt.Sprintf("%04x", product), "bDeviceClass": "00", "bDeviceSubClass": "00", "bDeviceProtocol": "00"}, "usb")
			log.record("usb", "+usb:"+dev, "usb %s: new high-speed USB device number %d using xhci_hcd", dev, n+1)
			log.record("usb", "+usb:"+dev, "usb %s: New USB device found, idVendor=fb10, idProduct=%04x, bcdDevice= 1.00", dev, product)
			var drv *benchDriver
			bound := false
			switch {
			case j < 4:
				drv = fw(8 + j/2)
			case j < 10:
				drv, bound = plainDrv(j), true
			}
			id := dev + ":1.0"
			driver := ""
			fx.want["usb/"+id] = ""
			if drv != nil {
				drv.aliases = append(drv.aliases, fmt.Sprintf("usb:vFB10p%04Xd*dc*dsc*dp*ic*isc*ip*in*", product))
				fx.want["usb/"+id] = drv.name
				if bound {
					driver = drv.name
				} else {
					failed(drv.name, id, "usb", "+usb:"+id, 8+j/2)
				}
			}
			usbEntry(tree, id, hubDir+"/"+dev+"/"+id, map[string]string{"bInterfaceClass": "ff", "bInterfaceSubClass": "ff", "bInterfaceProtocol": "ff",
				"modalias": fmt.Sprintf("usb:vFB10p%04Xd0100dc00dsc00dp00icFFiscFFipFFin00", product)}, driver)
		}
	}
	// What the re-probe and the merge write: plain files.
	tree["/sys/bus/pci/drivers_probe"] = ""
	tree["/sys/bus/usb/drivers_probe"] = ""
	tree[benchFirmwareClassPath] = "\n"
	tree["/dev/kmsg"] = "" // apply's log lines
	tree["/etc/initrd-release"] = ""
	tree["/etc/os-release"] = "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n"
	tree["/run/cos/active_mode"] = "" // immucore's boot state, in the initrd's /run
	tree["/tmp/.keep"] = ""
	if err := os.MkdirAll(fx.dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := vfst.NewBuilder().Build(vfs.NewPathFS(vfs.OSFS, fx.dir), tree); err != nil {
		b.Fatal(err)
	}
	writeModules(b, filepath.Join(fx.dir, "lib/modules", testkernel.Release), drivers)
	if err := os.WriteFile(fx.kmsg, log.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}

	for k := range benchImages {
		name := fmt.Sprintf("fw-vendor%d", k)
		fx.images[name] = buildBenchImage(b, filepath.Join(base, "src", name), filepath.Join(base, "images", name+".raw"), name, k, k%2 == 0)
	}
	fx.sysroot = map[string]string{
		"etc/os-release":                      "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\nKAIROS_VERSION=v3.5.0\n",
		"usr/lib/os-release":                  "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n",
		"usr/lib/firmware/README":             "the image's own firmware directory\n",
		"usr/lib/firmware/updates":            "->/usr/local/lib/firmware",
		"usr/local/lib/firmware/.keep":        "",
		"usr/bin/sh":                          "sh",
		"usr/share/doc/README":                "x",
		"var/lib/kairos/extensions/common/.k": "",
		"oem/90_firmware.yaml":                "#cloud-config\nfirmware:\n  reprobe:\n    attempts: 1\n    timeout: 1ms\n",
	}
	writeSysroot(b, filepath.Join(fx.dir, benchSysroot[1:]), fx)
	root, err := hostfs.New(fx.dir)
	if err != nil {
		b.Fatal(err)
	}
	fx.root = root
	return fx
}

// writeSysroot writes the sysroot's files and its Kairos store: each image as
// <name>.sysext.raw, enabled in active/ by an absolute link, as kairos-agent sysext writes it.
func writeSysroot(b *testing.B, dir string, fx *applyFixture) {
	b.Helper()
	imagetest.WriteTree(b, dir, fx.sysroot)
	store := filepath.Join(dir, plan.StoreRoot[1:])
	if err := os.MkdirAll(filepath.Join(store, "active"), 0o755); err != nil {
		b.Fatal(err)
	}
	for name, file := range fx.images {
		benchCopy(b, file, filepath.Join(store, name+".sysext.raw"))
		if err := os.Symlink(filepath.Join(plan.StoreRoot, name+".sysext.raw"), filepath.Join(store, "active", name+".sysext.raw")); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCopy(b *testing.B, src, dst string) {
	b.Helper()
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(dst), 0o755)
	}
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// usbEntry adds a USB device or interface: its attributes under dir, its /sys/bus/usb/devices
// link and, when driver is not "", its driver link.
func usbEntry(tree map[string]any, name, dir string, attrs map[string]string, driver string) {
	tree["/sys/bus/usb/devices/"+name] = &vfst.Symlink{Target: "../../../devices/" + strings.TrimPrefix(dir, "/sys/devices/")}
	for k, v := range attrs {
		tree[dir+"/"+k] = v + "\n"
	}
	if driver != "" {
		up := strings.Repeat("../", strings.Count(strings.TrimPrefix(dir, "/sys/"), "/")+1)
		tree[dir+"/driver"] = &vfst.Symlink{Target: up + "bus/usb/drivers/" + driver}
	}
	// The uevent file real sysfs has beside them, with the same values (usb_uevent,
	// usb_if_uevent): detect reads it first.
	num := func(k string, base int) uint64 { v, _ := strconv.ParseUint(attrs[k], base, 32); return v }
	var ev string
	if _, device := attrs["idVendor"]; device {
		ev = fmt.Sprintf("DEVTYPE=usb_device\nPRODUCT=%x/%x/100\nTYPE=%d/%d/%d\n", num("idVendor", 16), num("idProduct", 16),
			num("bDeviceClass", 16), num("bDeviceSubClass", 16), num("bDeviceProtocol", 16))
	} else {
		var vendor, product uint64
		fmt.Sscanf(attrs["modalias"], "usb:v%4Xp%4X", &vendor, &product)
		ev = fmt.Sprintf("DEVTYPE=usb_interface\nPRODUCT=%x/%x/100\nTYPE=0/0/0\nINTERFACE=%d/%d/%d\nMODALIAS=%s\n", vendor, product,
			num("bInterfaceClass", 16), num("bInterfaceSubClass", 16), num("bInterfaceProtocol", 16), attrs["modalias"])
	}
	if driver != "" {
		ev += "DRIVER=" + driver + "\n"
	}
	tree[dir+"/uevent"] = ev
}

// kmsgWriter writes /dev/kmsg records ("prio,seq,usec,-;message" and the device's SUBSYSTEM
// and DEVICE lines), as reading /dev/kmsg gives them.
type kmsgWriter struct {
	bytes.Buffer
	seq int
}

func (w *kmsgWriter) record(subsystem, device, format string, args ...any) {
	fmt.Fprintf(&w.Buffer, "6,%d,%d,-;"+format+"\n", append([]any{w.seq, 1000000 + 1500*w.seq}, args...)...)
	if subsystem != "" {
		fmt.Fprintf(&w.Buffer, " SUBSYSTEM=%s\n DEVICE=%s\n", subsystem, device)
	}
	w.seq++
}

// boot writes the records every boot has before the devices: the kernel's banner, the memory
// map, ACPI tables, CPUs, and the initrd's services: about 700 records.
func (w *kmsgWriter) boot() {
	w.record("", "", "Linux version %s (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian", testkernel.Release)
	w.record("", "", "Command line: BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE rd.immucore.debug console=tty1")
	for i := range 120 {
		w.record("", "", "BIOS-e820: [mem 0x%016x-0x%016x] %s", i<<24, (i+1)<<24-1, []string{"usable", "reserved", "ACPI data", "ACPI NVS"}[i%4])
	}
	for i := range 120 {
		w.record("", "", "ACPI: %s 0x%016X %06X (v02 VENDOR TABLE%02d 00000002 INTL 20200925)", []string{"SSDT", "DSDT", "FACP", "APIC", "MCFG"}[i%5], 0x7ff00000+i*0x1000, 0x100+i, i)
	}
	for i := range 160 {
		w.record("", "", "smpboot: CPU %d: x86: Booting SMP configuration: node 0, core %d", i, i/2)
	}
	for i := range 200 {
		w.record("", "", "systemd[1]: Starting unit-%03d.service - Initrd service %d...", i, i)
	}
	for i := range 100 {
		w.record("", "", "random: crng init progress %d, entropy pool %d", i, i*37%4096)
	}
}

// writeModules writes the kernel's module metadata: Debian 6.1's real modules.alias,
// modules.dep and modules.builtin.modinfo (about 26,000 aliases) with this machine's drivers
// added, each loadable driver's .ko (an ELF file with only its .modinfo section), and Debian's
// real xhci-pci.ko and usbcore.ko, which serve the xHCI controllers and the root hubs by class.
func writeModules(b *testing.B, dir string, drivers []*benchDriver) {
	b.Helper()
	real := testkernel.ModulesDir(b)
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(real, name))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	alias, dep, builtin := bytes.NewBuffer(read("modules.alias")), bytes.NewBuffer(read("modules.dep")), bytes.NewBuffer(read("modules.builtin.modinfo"))
	for _, d := range drivers {
		file := "kernel/drivers/kfwb/" + d.name + ".ko"
		var modinfo []string
		for _, fw := range d.firmware {
			modinfo = append(modinfo, "firmware="+fw)
		}
		for _, a := range d.aliases {
			modinfo = append(modinfo, "alias="+a)
		}
		modinfo = append(modinfo, "description=kairos-firmware benchmark driver", "license=GPL", "name="+d.name, "vermagic="+testkernel.Release+" SMP preempt mod_unload modversions ")
		if d.loadable {
			for _, a := range d.aliases {
				fmt.Fprintf(alias, "alias %s %s\n", a, d.name)
			}
			fmt.Fprintf(dep, "%s:\n", file)
			writeFile(b, filepath.Join(dir, file), moduleELF(modinfo))
			continue
		}
		for _, kv := range modinfo {
			if !strings.HasPrefix(kv, "name=") && !strings.HasPrefix(kv, "vermagic=") {
				fmt.Fprintf(builtin, "%s.%s\x00", d.name, kv)
			}
		}
	}
	writeFile(b, filepath.Join(dir, "modules.alias"), alias.Bytes())
	writeFile(b, filepath.Join(dir, "modules.dep"), dep.Bytes())
	// And their indexes, as depmod writes them beside (what detect reads first).
	writeFile(b, filepath.Join(dir, "modules.alias.bin"), kmodtest.AliasIndex(alias.Bytes(), true))
	writeFile(b, filepath.Join(dir, "modules.dep.bin"), kmodtest.DepIndex(dep.Bytes(), true))
	writeFile(b, filepath.Join(dir, "modules.builtin.modinfo"), builtin.Bytes())
	for _, ko := range []string{"kernel/drivers/usb/host/xhci-pci.ko", "kernel/drivers/usb/core/usbcore.ko"} {
		writeFile(b, filepath.Join(dir, ko), read(ko))
	}
}

func writeFile(b *testing.B, p string, data []byte) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// moduleELF is a relocatable x86-64 ELF file whose only section besides the section names is
// .modinfo with the given key=value strings: what modinfo reads of a module.
func moduleELF(modinfo []string) []byte {
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	names := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	namesOff := ehsize + len(info)
	shoff := (namesOff + len(names) + 7) &^ 7
	hdr := elf.Header64{Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(shoff), Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: ehsize, Size: uint64(len(info)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: uint64(namesOff), Size: uint64(len(names)), Addralign: 1},
	}
	var buf bytes.Buffer
	byteorder.Write(&buf, byteorder.LittleEndian, &hdr)
	buf.Write(info)
	buf.Write(names)
	buf.Write(make([]byte, shoff-buf.Len()))
	byteorder.Write(&buf, byteorder.LittleEndian, sections)
	return buf.Bytes()
}

// buildBenchImage builds the erofs image (lz4hc, as kairosRoot does) of firmware extension name:
// the three files firmware driver k declares and 47 more under vendor<k>/ (2 to 12 KiB of
// incompressible bytes each), its extension-release as AuroraBoot writes it, a license file
// under /usr/share and, with manifest, the embedded manifest the image builder writes.
func buildBenchImage(b *testing.B, src, dst, name string, k int, manifest bool) string {
	b.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{byte(k)}))
	m := manifests.Manifest{Version: manifests.ManifestVersion, Name: name}
	files := append([]string{}, benchFirmware(k)...)
	for n := len(files); n < benchFilesPerImg; n++ {
		files = append(files, fmt.Sprintf("vendor%d/extra/fw%d-%02d.bin", k, k, n))
	}
	for _, f := range files {
		data := make([]byte, 2048+rng.IntN(10*1024))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		writeFile(b, filepath.Join(src, "usr/lib/firmware", f), data)
		sum := sha256.Sum256(data)
		m.Firmware = append(m.Firmware, manifests.ManifestFirmware{Path: f, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))})
	}
	writeFile(b, filepath.Join(src, "usr/lib/extension-release.d/extension-release."+name), []byte("ID=_any\nARCHITECTURE=x86-64\n"))
	writeFile(b, filepath.Join(src, "usr/share/doc", name, "copyright"), []byte("Redistributable firmware of vendor "+strconv.Itoa(k)+"\n"))
	if manifest {
		data, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		writeFile(b, filepath.Join(src, manifests.ManifestPath(name)), data)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		b.Fatal(err)
	}
	imagetest.Erofs(b, dst, src, "-zlz4hc")
	return dst
}

// checkApply fails the benchmark unless apply did what the fixture is made for: 100 devices
// resolved to their modules, the 10 images merged, the 12 failed devices re-probed once each
// (without a kernel behind the fake sysfs none binds) and no error.
func checkApply(b *testing.B, fx *applyFixture, res *apply.Result) {
	b.Helper()
	rep := res.Report
	if len(rep.Errors) > 0 || len(rep.ConfigErrors) > 0 || res.Plan == nil {
		b.Fatalf("apply: errors %q, config errors %v", rep.Errors, rep.ConfigErrors)
	}
	if res.Plan.Config.Reprobe.Attempts != 1 {
		b.Fatalf("the fixture's /oem config was not read: %+v", res.Plan.Config.Reprobe)
	}
	if len(res.Plan.Devices) != 100 {
		b.Fatalf("%d devices, want 100", len(res.Plan.Devices))
	}
	for _, d := range res.Plan.Devices {
		want, ok := fx.want[d.Bus+"/"+d.ID]
		switch {
		case !ok:
		case want == "" && len(d.Modules) != 0, want != "" && (len(d.Modules) != 1 || d.Modules[0] != want):
			b.Errorf("%s %s: modules %v, want %q", d.Bus, d.ID, d.Modules, want)
		}
		if len(d.Warnings) > 0 {
			b.Errorf("%s %s: warnings %q", d.Bus, d.ID, d.Warnings)
		}
	}
	merged := 0
	for _, img := range rep.Images {
		if img.Outcome == report.ImageMerged {
			merged++
		}
	}
	if merged != benchImages || len(rep.Images) != benchImages {
		b.Fatalf("images %+v", rep.Images)
	}
	if len(rep.Devices) != fx.failing || fx.failing != 12 {
		b.Fatalf("re-probed %d devices, %d failed: %+v", len(rep.Devices), fx.failing, rep.Devices)
	}
	for _, d := range rep.Devices {
		if d.Outcome != report.DeviceStillUnbound || d.Attempts != 1 {
			b.Fatalf("device %+v", d)
		}
	}
	if len(rep.Firmware) != benchImages*benchFilesPerImg {
		b.Fatalf("bill of materials: %d files", len(rep.Firmware))
	}
	if b.Failed() {
		b.FailNow()
	}
}

// BenchmarkApplyHost measures apply's own time — its run minus the re-probe, which waits for
// drivers — on a machine of 100 PCI and USB devices, 12 of which failed to load firmware, with
// 10 erofs images in the sysroot's Kairos store, all selected: apply.Run with sysops.Linux and
// real loop, erofs and overlay mounts, in a private mount namespace. The fixture's /oem config
// sets reprobe attempts 1 and timeout 1ms. One warm-up run comes first (page cache, loop
// devices); every run is unmerged before the next. Goal: own_ms at most 20. ns/op is the whole
// apply.Run, re-probe included.
func BenchmarkApplyHost(b *testing.B) {
	if !benchInPrivateNS(b) {
		return
	}
	fx := newApplyFixture(b)
	ops := &benchOps{allow: fx.dir, attr: filepath.Join(fx.dir, benchFirmwareClassPath)}
	mopts := merge.Options{Sysroot: benchSysroot, FirmwareClassPath: benchFirmwareClassPath}
	opts := apply.Options{Root: fx.root, Sysroot: benchSysroot, KernelRelease: testkernel.Release, KmsgPath: fx.kmsg,
		Ops: ops, Console: io.Discard, Merge: mopts}
	unmerge := func() {
		if err := merge.Unmerge(fx.root, ops, mopts); err != nil {
			b.Fatal(err)
		}
	}
	warm := apply.Run(opts)
	checkApply(b, fx, warm)
	if got, _ := os.ReadFile(filepath.Join(fx.dir, benchFirmwareClassPath)); string(got) != merge.DefaultRunDir+"/firmware\n" {
		b.Fatalf("firmware_class.path %q", got)
	}
	unmerge()

	var sum applySteps
	runs, exact := 0, true
	for b.Loop() {
		ops.marks = ops.marks[:0]
		res := apply.Run(opts)
		b.StopTimer()
		if len(res.Report.Errors) > 0 {
			b.Fatalf("apply: %q", res.Report.Errors)
		}
		s, ok := ops.steps(res.Report.Timings)
		exact = exact && ok
		sum.gather += s.gather
		sum.plan += s.plan
		sum.merge += s.merge
		sum.reprobe += s.reprobe
		sum.bom += s.bom
		sum.total += s.total
		runs++
		unmerge()
		b.StartTimer()
	}
	if !exact {
		b.Logf("apply's clock readings were not the expected ones: the figures are the report's whole milliseconds")
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(runs) / 1e6 }
	b.ReportMetric(ms(sum.gather), "gather_ms")
	b.ReportMetric(ms(sum.plan), "plan_ms")
	b.ReportMetric(ms(sum.merge), "merge_ms")
	b.ReportMetric(ms(sum.bom), "bom_ms")
	b.ReportMetric(ms(sum.reprobe), "reprobe_ms")
	b.ReportMetric(ms(sum.total-sum.reprobe), "own_ms")
	b.ReportMetric(float64(len(warm.Plan.Devices)), "devices")
	b.ReportMetric(float64(benchImages), "images")
}

// BenchmarkMergeVsSystemdSysext merges the 10 images of BenchmarkApplyHost into two copies of
// its sysroot (images under /var/lib/extensions, where systemd-sysext looks for them), with
// `systemd-sysext --root=DIR merge` and with stages/merge.Merge, then unmerges each
// (`systemd-sysext --root=DIR unmerge`, merge.Unmerge), timing each step. Both merge the
// hierarchies systemd-sysext merges by default, /usr and /opt (merge.SystemdHierarchies; only
// /usr is populated), so the comparison is like for like; Merge also makes the firmware overlay,
// writes firmware_class.path (a file here) and links /run/extensions, which systemd-sysext does
// not, and systemd-sysext's figure includes starting its process. The two alternate which goes
// first. Goal: ratio (merge_ms / sysext_ms) at most 1.0.
func BenchmarkMergeVsSystemdSysext(b *testing.B) {
	if !benchInPrivateNS(b, "systemd-sysext") {
		return
	}
	sysext := testkernel.Tool(b, "systemd-sysext")
	fx := newApplyFixture(b)
	// systemd-sysext forks into a namespace of its own and binds its overlays into place from
	// there: the roots are on a tmpfs made shared so that the binds propagate back, and /run
	// (its workspace, /run/systemd/sysext, and Merge's RunDir) is a tmpfs of the namespace.
	benchTmpfs(b, "/run")
	if err := unix.Mount("", fx.base, "", unix.MS_SHARED, ""); err != nil {
		b.Fatal(err)
	}
	sd, ours := filepath.Join(fx.base, "sd"), filepath.Join(fx.base, "ours")
	for _, dir := range []string{sd, ours} {
		writeSysroot(b, dir, fx)
		for name, file := range fx.images {
			benchCopy(b, file, filepath.Join(dir, "var/lib/extensions", name+".raw"))
		}
	}
	root, err := hostfs.New("/")
	if err != nil {
		b.Fatal(err)
	}
	target, err := hostfs.New(ours)
	if err != nil {
		b.Fatal(err)
	}
	var images []*manifests.Image
	for k := range benchImages {
		img, err := manifests.ReadEntry(target, fmt.Sprintf("/var/lib/extensions/fw-vendor%d.raw", k))
		if err != nil {
			b.Fatal(err)
		}
		images = append(images, img)
	}
	attr := filepath.Join(fx.base, "firmware_class.path")
	writeFile(b, attr, []byte("\n"))
	ops := &benchOps{allow: fx.base, attr: attr}
	opts := merge.Options{Sysroot: ours, Hierarchies: merge.SystemdHierarchies, FirmwareClassPath: attr}
	// systemd-sysext's own defaults: SYSTEMD_SYSEXT_HIERARCHIES unset.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SYSTEMD_SYSEXT_HIERARCHIES=") {
			env = append(env, e)
		}
	}
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	sysextRun := func(verb string) {
		cmd := exec.Command(sysext, "--root="+sd, verb)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("systemd-sysext --root=%s %s: %v\n%s", sd, verb, err, out)
		}
	}
	oursMerge := func() {
		st, err := merge.Merge(root, ops, images, opts)
		if err != nil {
			b.Fatal(err)
		}
		if p := st.Problems(); len(p) > 0 {
			b.Fatalf("merge: %q", p)
		}
	}
	oursUnmerge := func() {
		if err := merge.Unmerge(root, ops, opts); err != nil {
			b.Fatal(err)
		}
	}
	var sdMerge, sdUnmerge, ourMerge, ourUnmerge time.Duration
	iteration := func(i int) {
		do := []func(){
			func() {
				sdMerge += timed(func() { sysextRun("merge") })
				sdUnmerge += timed(func() { sysextRun("unmerge") })
			},
			func() { ourMerge += timed(oursMerge); ourUnmerge += timed(oursUnmerge) },
		}
		do[i%2]()
		do[1-i%2]()
	}

	// A warm-up round, checking both merged the same files.
	sysextRun("merge")
	oursMerge()
	for _, dir := range []string{sd, ours} {
		for k := range benchImages {
			if _, err := os.Stat(filepath.Join(dir, "usr/lib/firmware", benchFirmware(k)[0])); err != nil {
				b.Fatalf("not merged: %v", err)
			}
		}
		if data, err := os.ReadFile(filepath.Join(dir, "usr/.systemd-sysext/extensions")); err != nil || strings.Count(string(data), "fw-vendor") != benchImages {
			b.Fatalf("%s: marker %q %v", dir, data, err)
		}
	}
	sysextRun("unmerge")
	oursUnmerge()
	sdMerge, sdUnmerge, ourMerge, ourUnmerge = 0, 0, 0, 0

	runs := 0
	for b.Loop() {
		iteration(runs)
		runs++
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(runs) / 1e6 }
	b.ReportMetric(ms(sdMerge), "sysext_ms")
	b.ReportMetric(ms(ourMerge), "merge_ms")
	b.ReportMetric(float64(ourMerge)/float64(sdMerge), "ratio")
	b.ReportMetric(ms(sdUnmerge), "sysext_unmerge_ms")
	b.ReportMetric(ms(ourUnmerge), "unmerge_ms")
}

// BenchmarkApplyInGuest boots the QEMU rig once (TCG, one CPU) with the root of the apply
// scenarios (kairosRoot: one erofs image holding the firmware of the rig's two kfwtest devices,
// whose probes failed) and reports the timings of the report `kairos-firmware apply` wrote in
// the guest, in whole milliseconds; own_ms is total_ms - reprobe_ms, ns/op is total_ms. The boot
// happens once per run of the benchmark, whatever the iteration count.
func BenchmarkApplyInGuest(b *testing.B) {
	var rep *report.Report
	var boot time.Duration
	for b.Loop() {
		if rep != nil {
			continue
		}
		r := bootApply(b, kairosRoot(b, nil, nil), "")
		if r.ExitCode != 0 {
			b.Fatalf("scenario exit %d\n%s", r.ExitCode, r.Console)
		}
		rep = guestReport(b, r, "apply")
		boot = r.Elapsed
		if len(rep.Errors) > 0 || len(rep.Images) != 1 || rep.Images[0].Outcome != report.ImageMerged {
			b.Fatalf("report: errors %q, images %+v", rep.Errors, rep.Images)
		}
		for _, d := range rep.Devices {
			if d.Outcome != report.DeviceBound {
				b.Fatalf("device %+v", d)
			}
		}
	}
	t := rep.Timings
	b.ReportMetric(float64(t.GatherMS), "gather_ms")
	b.ReportMetric(float64(t.PlanMS), "plan_ms")
	b.ReportMetric(float64(t.MergeMS), "merge_ms")
	b.ReportMetric(float64(t.ReprobeMS), "reprobe_ms")
	b.ReportMetric(float64(t.BOMMS), "bom_ms")
	b.ReportMetric(float64(t.TotalMS), "total_ms")
	b.ReportMetric(float64(t.TotalMS-t.ReprobeMS), "own_ms")
	b.ReportMetric(float64(t.TotalMS)*1e6, "ns/op")
	b.ReportMetric(boot.Seconds(), "boot_s")
}
