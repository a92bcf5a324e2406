// Package qemu boots Debian's real kernel (the one tests/fixtures/debian-kernel.sh unpacks) in
// QEMU with a busybox initramfs, so tests can watch the kernel's own firmware loading: the
// kfwtest drivers (kfwtest/) fail their probes for missing firmware on QEMU's edu PCI device and
// on an emulated USB WLAN dongle, exactly like the driver in the Kairos firmware spike.
//
// A test writes a scenario (a busybox sh script, scenarios/*.sh) that reports what it sees
// through the console protocol of guest/lib.sh, and calls Run. README.md has the details.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// Headers are the kernel headers kfwtest is built against (Debian package
// linux-headers-<release>, installed by tests/fixtures/deps.sh).
var Headers = "/usr/src/linux-headers-" + testkernel.Release

// DefaultModules are the kernel modules every initramfs carries (with their dependencies).
// /init loads the virtio and USB gadget ones; the filesystems load on demand at mount time
// (busybox modprobe resolves the kernel's fs-<type> requests through modules.alias).
var DefaultModules = []string{
	"virtio_pci", "virtio_blk",
	"configfs", "dummy_hcd", "libcomposite", "usb_f_ss_lb",
	"squashfs", "erofs", "ext4", "overlay", "loop", "dm_verity",
}

// DefaultTimeout bounds a boot that hangs. It is not a performance assertion: a boot takes
// about 6 s under TCG here (README.md).
const DefaultTimeout = 2 * time.Minute

// Boot describes one boot of the rig.
type Boot struct {
	// Scenario is the host path of a busybox sh script; the guest runs it as /kfw/scenario.sh
	// after /init has prepared the devices. Its exit code is Result.ExitCode.
	Scenario string
	// Files are extra files for the initramfs: guest path -> host path (e.g.
	// "/usr/bin/kairos-firmware": the binary under test). Parent directories are created.
	Files map[string]string
	// Disks are raw images attached as virtio disks, in order: /dev/vda, /dev/vdb, ...
	// They are writable: pass a copy when the image must stay as it is.
	Disks []string
	// Append is added to the kernel command line. /init knows kfw.nogadget (no USB dongle) and
	// kfw.nodriver (kfwtest not loaded, so nothing has probed yet).
	Append string
	// Modules are kernel modules to ship in addition to DefaultModules (the scenario loads them).
	Modules []string
	// Timeout bounds the boot; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Result is what a boot reported on its console.
type Result struct {
	// Console is the whole serial console, "\r" removed.
	Console string
	// Values are the scenario's KFW-RESULT key=value lines, in order per key.
	Values map[string][]string
	// Blocks are the lines between KFW-BEGIN name and KFW-END name.
	Blocks map[string]string
	// Kmsg is the kernel log /init dumps after the scenario (Blocks["kmsg"]).
	Kmsg string
	// ExitCode is the scenario's exit code (KFW-DONE rc=N), -1 when the guest never said.
	ExitCode int
	// Elapsed is the wall time from starting QEMU to its exit.
	Elapsed time.Duration
}

// Value is the last value reported for key, "" when there is none.
func (r *Result) Value(key string) string {
	v := r.Values[key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// Run boots the rig with b and returns what the guest reported. It fails the test when the
// guest did not reach the end of its /init (a hang, a panic, a setup failure), and skips it
// (fails under CI) when QEMU, the kernel fixture or the headers are missing. A scenario's
// non-zero exit code is not a failure here: the test decides.
func Run(t testing.TB, b Boot) *Result {
	t.Helper()
	qemuBin := testkernel.Tool(t, "qemu-system-x86_64")
	kdir := testkernel.Dir(t)
	if b.Scenario == "" {
		t.Fatal("qemu.Run: Boot.Scenario is empty")
	}
	base := baseInitramfs(t, kdir, append(append([]string{}, DefaultModules...), b.Modules...))

	work := t.TempDir()
	initrd := filepath.Join(work, "initrd.img")
	if err := writeInitrd(initrd, base, b); err != nil {
		t.Fatalf("qemu.Run: initramfs: %v", err)
	}

	args := []string{
		"-accel", "tcg", // nested KVM hangs on this machine kind (FACTS.md)
		"-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
		"-no-reboot", "-nic", "none",
		"-kernel", filepath.Join(kdir, "boot", "vmlinuz-"+testkernel.Release),
		"-initrd", initrd,
		// loglevel=3 keeps info and warning printks off the console, where they could cut
		// through a KFW- line; /init prints the whole log in the kmsg block instead.
		"-append", strings.TrimSpace("console=ttyS0 loglevel=3 panic=-1 " + b.Append),
		"-device", "edu",
	}
	// qboot, QEMU's minimal firmware, reaches the kernel about a second sooner than SeaBIOS
	// under TCG; both boot the same kernel the same way.
	if _, err := os.Stat("/usr/share/qemu/qboot.rom"); err == nil {
		args = append(args, "-bios", "qboot.rom")
	}
	for _, d := range b.Disks {
		if strings.Contains(d, ",") {
			t.Fatalf("qemu.Run: disk path %q has a comma, which QEMU's -drive cannot take", d)
		}
		args = append(args, "-drive", "file="+d+",if=virtio,format=raw")
	}

	timeout := b.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBin, args...)
	var console bytes.Buffer
	var out io.Writer = &console
	if os.Getenv("KFW_QEMU_VERBOSE") != "" {
		out = io.MultiWriter(&console, os.Stderr)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)

	r := parse(console.String())
	r.Elapsed = elapsed
	t.Logf("qemu: %s booted in %s", filepath.Base(b.Scenario), elapsed.Round(100*time.Millisecond))
	switch {
	case ctx.Err() != nil:
		t.Fatalf("qemu: killed after the %s bound: the guest hung\nconsole:\n%s", timeout, tail(r.Console, 80))
	case err != nil:
		t.Fatalf("qemu: %v\n%s\nconsole:\n%s", err, stderr.String(), tail(r.Console, 80))
	case strings.Contains(r.Console, "KFW-SETUP-FAILED"):
		t.Fatalf("qemu: /init could not prepare the guest\nconsole:\n%s", r.Console)
	case r.ExitCode < 0:
		t.Fatalf("qemu: the guest stopped before the end of /init (kernel panic?)\nconsole:\n%s", tail(r.Console, 80))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console of the %s boot:\n%s", filepath.Base(b.Scenario), r.Console)
		}
	})
	return r
}

var (
	resultLine = regexp.MustCompile(`^KFW-RESULT ([^=\s]+)=(.*)$`)
	doneLine   = regexp.MustCompile(`^KFW-DONE rc=(\d+)$`)
)

// parse reads the console protocol of guest/lib.sh.
func parse(console string) *Result {
	console = strings.ReplaceAll(console, "\r", "")
	r := &Result{Console: console, Values: map[string][]string{}, Blocks: map[string]string{}, ExitCode: -1}
	var block string
	var lines []string
	for _, line := range strings.Split(console, "\n") {
		if block != "" {
			if line == "KFW-END "+block {
				r.Blocks[block] = strings.Join(lines, "\n")
				block, lines = "", nil
			} else {
				lines = append(lines, line)
			}
			continue
		}
		if name, ok := strings.CutPrefix(line, "KFW-BEGIN "); ok {
			block = name
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			r.Values[m[1]] = append(r.Values[m[1]], m[2])
		}
		if m := doneLine.FindStringSubmatch(line); m != nil {
			r.ExitCode, _ = strconv.Atoi(m[1])
		}
	}
	r.Kmsg = r.Blocks["kmsg"]
	return r
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Disk makes a raw filesystem image of dir with mkdisk.sh (fstype erofs, squashfs or ext4) in
// the test's temporary directory and returns its path, for Boot.Disks.
func Disk(t testing.TB, dir, fstype string) string {
	t.Helper()
	tools := map[string]string{"erofs": "mkfs.erofs", "squashfs": "mksquashfs", "ext4": "mke2fs"}
	tool, ok := tools[fstype]
	if !ok {
		t.Fatalf("qemu.Disk: unknown filesystem %q", fstype)
	}
	testkernel.Tool(t, tool)
	img := filepath.Join(t.TempDir(), "disk."+fstype)
	cmd := exec.Command(filepath.Join(rigDir(), "mkdisk.sh"), img, dir, fstype)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu.Disk: mkdisk.sh: %v\n%s", err, out)
	}
	return img
}

// rigDir is tests/qemu in the repository.
func rigDir() string {
	return filepath.Join(testkernel.RepoRoot(), "tests", "qemu")
}

// cacheDir holds the built module and initramfs images, keyed on a hash of their inputs.
func cacheDir() string {
	return filepath.Join(testkernel.RepoRoot(), ".cache", "qemu")
}

// buildMu serializes builds within the process; across processes a cache entry is published by
// an atomic rename, so a concurrent build at worst does the same work twice.
var buildMu sync.Mutex

// Module returns kfwtest.ko built against Headers, rebuilding it when kfwtest/ changes.
func Module(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	return module(t)
}

func module(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(Headers, "Makefile")); err != nil {
		testkernel.Missing(t, "kernel headers %s are missing: run `make deps`", Headers)
	}
	testkernel.Tool(t, "make")
	testkernel.Tool(t, "gcc")
	src := filepath.Join(rigDir(), "kfwtest")
	h := sha256.New()
	fmt.Fprintf(h, "headers %s\n", Headers)
	names := hashDir(t, h, src)
	dest := filepath.Join(cacheDir(), "kfwtest-"+hex.EncodeToString(h.Sum(nil))[:16])
	ko := filepath.Join(dest, "kfwtest.ko")
	if cached(dest, "kfwtest.ko") {
		return ko
	}
	if err := os.MkdirAll(cacheDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	build, err := os.MkdirTemp(cacheDir(), ".kfwtest-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(build)
	for _, name := range names {
		copyFile(t, filepath.Join(src, name), filepath.Join(build, name))
	}
	cmd := exec.Command("make", "-C", build, "KDIR="+Headers)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kfwtest.ko against %s: %v\n%s", Headers, err, out)
	}
	publish(t, build, dest, "kfwtest-")
	return ko
}

// baseInitramfs returns the cached output of mkinitramfs.sh for these modules.
func baseInitramfs(t testing.TB, kdir string, modules []string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	ko := module(t)
	for _, tool := range []string{"busybox", "cpio", "depmod", "modprobe", "gzip", "file"} {
		testkernel.Tool(t, tool)
	}
	busybox, _ := exec.LookPath("busybox")
	h := sha256.New()
	fmt.Fprintf(h, "kernel %s\nmodules %q\n", kdir, modules)
	for _, f := range []string{ko, busybox, filepath.Join(rigDir(), "mkinitramfs.sh")} {
		hashFile(t, h, f)
	}
	hashDir(t, h, filepath.Join(rigDir(), "guest"))
	dest := filepath.Join(cacheDir(), "initramfs-"+hex.EncodeToString(h.Sum(nil))[:16])
	img := filepath.Join(dest, "base.cpio.gz")
	if cached(dest, "base.cpio.gz") {
		return img
	}
	build, err := os.MkdirTemp(cacheDir(), ".initramfs-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(build)
	args := append([]string{filepath.Join(build, "base.cpio.gz"), kdir, ko}, modules...)
	cmd := exec.Command(filepath.Join(rigDir(), "mkinitramfs.sh"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkinitramfs.sh: %v\n%s", err, out)
	}
	publish(t, build, dest, "initramfs-")
	return img
}

// cacheKeep is how many entries of each kind (kfwtest-*, initramfs-*) the cache keeps: enough
// for tests that ship different module lists not to rebuild each other's images.
const cacheKeep = 8

// cached returns whether the cache entry dest exists, marking it as recently used.
func cached(dest, file string) bool {
	if _, err := os.Stat(filepath.Join(dest, file)); err != nil {
		return false
	}
	now := time.Now()
	_ = os.Chtimes(dest, now, now)
	return true
}

// publish renames a finished build to its cache entry and drops the least recently used
// entries of its kind beyond cacheKeep.
func publish(t testing.TB, build, dest, prefix string) {
	t.Helper()
	if err := os.Chmod(build, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(build, dest); err != nil {
		if _, statErr := os.Stat(dest); statErr != nil {
			t.Fatal(err)
		}
		return // another process published the same entry first
	}
	now := time.Now()
	_ = os.Chtimes(dest, now, now)
	entries, _ := filepath.Glob(filepath.Join(cacheDir(), prefix+"*"))
	used := map[string]time.Time{}
	for _, e := range entries {
		if fi, err := os.Stat(e); err == nil {
			used[e] = fi.ModTime()
		}
	}
	sort.Slice(entries, func(i, j int) bool { return used[entries[i]].After(used[entries[j]]) })
	for i, e := range entries {
		if i >= cacheKeep && e != dest {
			os.RemoveAll(e)
		}
	}
}

// hashDir hashes the regular files directly in dir (names and contents) and returns their names.
func hashDir(t testing.TB, h io.Writer, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "file %s\n", n)
		hashFile(t, h, filepath.Join(dir, n))
	}
	return names
}

func hashFile(t testing.TB, h io.Writer, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeInitrd writes the cached base archive followed by a per-boot newc archive holding
// /dev/console, /kfw/scenario.sh and Boot.Files. The kernel unpacks concatenated archives in
// order, but takes an uncompressed one only at a 4-byte aligned offset, so the gzip'd base is
// padded with zeros, which the unpacker skips (init/initramfs.c, unpack_to_rootfs).
func writeInitrd(path, base string, b Boot) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	in, err := os.Open(base)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, in)
	in.Close()
	if err != nil {
		return err
	}
	if _, err := out.Write(make([]byte, (4-n%4)%4)); err != nil {
		return err
	}
	w := newCpio(out)
	// The kernel opens /dev/console for /init before /init can mount devtmpfs; without the node
	// /init starts with no stdout ("Warning: unable to open an initial console").
	w.node("dev/console", 0o020600, 5, 1)
	files := map[string]string{"/kfw/scenario.sh": b.Scenario}
	for guest, host := range b.Files {
		files[guest] = host
	}
	guests := make([]string, 0, len(files))
	for g := range files {
		if !strings.HasPrefix(g, "/") {
			return fmt.Errorf("guest path %q is not absolute", g)
		}
		guests = append(guests, g)
	}
	sort.Strings(guests)
	for _, g := range guests {
		if err := w.file(strings.TrimPrefix(filepath.Clean(g), "/"), files[g]); err != nil {
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	return out.Close()
}

// cpioWriter writes a newc ("070701") archive, the format the kernel's initramfs unpacker reads
// (Documentation/driver-api/early-userspace/buffer-format.rst).
type cpioWriter struct {
	w    *bufio.Writer
	ino  int
	dirs map[string]bool
	err  error
}

func newCpio(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriter(w), dirs: map[string]bool{}}
}

func (c *cpioWriter) header(name string, mode uint32, size int64, rmajor, rminor int) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	_, c.err = c.w.WriteString(hdr + name + "\x00")
	c.pad(int64(len(hdr) + len(name) + 1))
}

func (c *cpioWriter) pad(n int64) {
	if c.err == nil {
		_, c.err = c.w.Write(make([]byte, (4-n%4)%4))
	}
}

func (c *cpioWriter) parents(name string) {
	dir := filepath.Dir(name)
	if dir == "." || c.dirs[dir] {
		return
	}
	c.parents(dir)
	c.dirs[dir] = true
	c.header(dir, 0o040755, 0, 0, 0)
}

func (c *cpioWriter) node(name string, mode uint32, major, minor int) {
	c.parents(name)
	c.header(name, mode, 0, major, minor)
}

func (c *cpioWriter) file(name, host string) error {
	f, err := os.Open(host)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", host)
	}
	c.parents(name)
	c.header(name, 0o100000|uint32(fi.Mode().Perm()), fi.Size(), 0, 0)
	if c.err != nil {
		return c.err
	}
	n, err := io.Copy(c.w, f)
	if err == nil && n != fi.Size() {
		err = errors.New("file changed while archiving")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", host, err)
	}
	c.pad(n)
	return c.err
}

func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
