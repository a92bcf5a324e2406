package merge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// Real-kernel tests: loop devices, erofs, squashfs and overlayfs mounts, as root. Each runs
// in a child process in a mount namespace of its own whose mounts are all private (unshare
// --mount --propagation private), so nothing it mounts reaches the host, and whatever it
// leaves goes with the namespace. The host's firmware_class.path is never written: the tests
// point Options.FirmwareClassPath at a file of their own.

// nsEnv tells the child which test to run inside the namespace.
const nsEnv = "KAIROS_FIRMWARE_MERGE_NS"

// inPrivateNS runs the calling test again in a private mount namespace and reports its
// result; it returns true in that child, where the test goes on.
func inPrivateNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(nsEnv) == t.Name() {
		return true
	}
	if os.Geteuid() != 0 {
		testkernel.Missing(t, "mounting needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testkernel.Missing(t, "no loop devices: %v", err)
	}
	for _, fs := range []string{"overlay", "erofs", "squashfs"} {
		if !kernelHas(fs) {
			testkernel.Missing(t, "the kernel has no %s filesystem", fs)
		}
	}
	unshare := testkernel.Tool(t, "unshare")
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), nsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in a private mount namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("the test did not pass in the namespace")
	}
	return false
}

// kernelHas says /proc/filesystems lists fs (modules the kernel would load on demand are
// not listed; the test rig loads them).
func kernelHas(fs string) bool {
	data, _ := os.ReadFile("/proc/filesystems")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == fs {
			return true
		}
	}
	return false
}

// hostOps is sysops.Linux with the test's attribute file standing in for sysfs: a write
// replaces its content and it reads back with a newline, like firmware_class.path.
type hostOps struct {
	sysops.Linux
	attr string
}

func (h hostOps) WriteAttr(path, value string) error {
	if path != h.attr {
		return fmt.Errorf("the test writes only %s, not %s", h.attr, path)
	}
	if len(value) > maxFirmwarePath {
		return fmt.Errorf("write %q to %s: %w", value, path, unix.ENOSPC)
	}
	return os.WriteFile(path, []byte(value+"\n"), 0o644)
}

// mountTmpfs mounts a tmpfs on dir, removed at cleanup.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// mountTable is /proc/self/mountinfo without the mount ids, which change from one mount to
// the next.
func mountTable(t *testing.T) []string {
	t.Helper()
	table, err := readMountInfo("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range table {
		out = append(out, fmt.Sprintf("%s %s %s %s %s %s", e.MountPoint, e.Root, e.Options, e.FSType, e.Source, e.Super))
	}
	return out
}

// hostSystem is an initrd root in a tmpfs with a sysroot holding an erofs, a squashfs and a
// directory image.
type hostSystem struct {
	dir    string
	root   *hostfs.Root
	images []*manifests.Image
	opts   Options
	ops    hostOps
}

func newHostSystem(t *testing.T) *hostSystem {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	mountTmpfs(t, dir)
	imagetest.WriteTree(t, dir, map[string]string{
		"sysroot/usr/lib/firmware/host.bin":    "host",
		"sysroot/usr/lib/firmware/updates":     "->/usr/local/lib/firmware",
		"sysroot/usr/lib/os-release":           "ID=kairos\n",
		"sysroot/usr/bin/sh":                   "sh",
		"sysroot/usr/share/doc/base/README":    "base",
		"sysroot/usr/local/lib/firmware/.keep": "",
		attrPath[1:]:                           "\n",
		"run/.keep":                            "",
		"sysroot/var/lib/kairos/extensions/fwd/usr/lib/firmware/d.bin":                            "fwd:d.bin",
		"sysroot/var/lib/kairos/extensions/fwd/usr/lib/extension-release.d/extension-release.fwd": "ID=_any\n",
	})
	store := filepath.Join(dir, "sysroot/var/lib/kairos/extensions")
	copyFile(t, buildImage(t, manifests.FormatErofs, mergeMaps(firmwareFiles("fwa", "a.bin", "shared.bin"), map[string]string{"usr/share/doc/fwa/README": "fwa docs"})), filepath.Join(store, "fwa.raw"))
	copyFile(t, buildImage(t, manifests.FormatSquashfs, firmwareFiles("fwb-10", "b.bin", "shared.bin", "vendor/b2.bin")), filepath.Join(store, "fwb-10.raw"))
	h := &hostSystem{dir: dir, root: mustRoot(t, dir), ops: hostOps{attr: dir + attrPath}}
	for _, p := range []string{"/var/lib/kairos/extensions/fwa.raw", "/var/lib/kairos/extensions/fwb-10.raw", "/var/lib/kairos/extensions/fwd"} {
		img, err := manifests.ReadEntry(mustRoot(t, dir+"/sysroot"), p)
		if err != nil {
			t.Fatal(err)
		}
		h.images = append(h.images, img)
	}
	h.opts = Options{Sysroot: "/sysroot"}
	return h
}

func mustRoot(t *testing.T, dir string) *hostfs.Root {
	t.Helper()
	r, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (h *hostSystem) read(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(h.dir + p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// loopsFree checks the loop devices a State used are detached (LO_FLAGS_AUTOCLEAR).
func loopsFree(t *testing.T, st *State) {
	t.Helper()
	for _, a := range st.Actions {
		if a.Kind != ActLoop || a.Source == "" {
			continue
		}
		backing, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(a.Source), "loop/backing_file"))
		if len(backing) != 0 && strings.TrimSpace(string(backing)) == a.Path {
			t.Errorf("%s still backed by %s", a.Source, backing)
		}
	}
}

// TestHostMerge merges an erofs, a squashfs and a directory image with the real kernel: the
// firmware reads through RunDir/firmware and through the sysroot's merged /usr/lib; a second
// Merge changes nothing; a Merge of fewer images re-does it; Unmerge leaves the mount table
// as it found it.
func TestHostMerge(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	h := newHostSystem(t)
	baseline := mountTable(t)

	start := time.Now()
	st, err := Merge(h.root, h.ops, h.images, h.opts)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Problems(); len(p) > 0 {
		t.Fatalf("problems: %q", p)
	}
	t.Logf("Merge of 3 images: %v", took)
	for name, want := range map[string]string{
		"a.bin": "fwa:a.bin", "b.bin": "fwb-10:b.bin", "vendor/b2.bin": "fwb-10:vendor/b2.bin", "d.bin": "fwd:d.bin",
		"shared.bin": "fwb-10:shared.bin", // the newest version is on top
	} {
		if got := h.read(t, "/run/kairos-firmware/firmware/"+name); got != want {
			t.Errorf("RunDir/firmware/%s = %q, want %q", name, got, want)
		}
		if got := h.read(t, "/sysroot/usr/lib/firmware/"+name); got != want {
			t.Errorf("/sysroot/usr/lib/firmware/%s = %q, want %q", name, got, want)
		}
	}
	if got := h.read(t, "/sysroot/usr/lib/firmware/host.bin"); got != "host" {
		t.Errorf("the host's firmware: %q", got)
	}
	if got := h.read(t, "/sysroot/usr/share/doc/fwa/README"); got != "fwa docs" {
		t.Errorf("/usr/share: %q", got)
	}
	if got := h.read(t, attrPath); got != "/run/kairos-firmware/firmware\n" {
		t.Errorf("firmware_class.path %q", got)
	}
	// The marker, as systemd-sysext reads it through the merged tree.
	if got := h.read(t, "/sysroot/usr/lib/.systemd-sysext/extensions"); got != "fwa\nfwb-10\nfwd\n" {
		t.Errorf("extensions %q", got)
	}
	var fi unix.Stat_t
	if err := unix.Lstat(h.dir+"/sysroot/usr/lib", &fi); err != nil {
		t.Fatal(err)
	}
	if got, want := h.read(t, "/sysroot/usr/lib/.systemd-sysext/dev"), fmt.Sprintf("%d:%d\n", unix.Major(fi.Dev), unix.Minor(fi.Dev)); got != want {
		t.Errorf("dev %q, want %q", got, want)
	}
	// Read-only everywhere.
	for _, p := range []string{"/sysroot/usr/lib/new", "/run/kairos-firmware/firmware/new", "/run/kairos-firmware/images/fwd/new"} {
		if err := os.WriteFile(h.dir+p, nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("writing %s: %v, want EROFS", p, err)
		}
	}
	table, _ := readMountInfo("/proc/self/mountinfo")
	for _, want := range []struct{ mp, opts, fstype string }{
		{"/run/kairos-firmware/images/fwa", "ro,nosuid,nodev", "erofs"},
		{"/run/kairos-firmware/images/fwb-10", "ro,nosuid,nodev", "squashfs"},
		{"/run/kairos-firmware/images/fwd", "ro,nosuid,nodev", "tmpfs"},
		{"/run/kairos-firmware/firmware", "ro,nosuid,nodev", "overlay"},
		{"/sysroot/usr/lib", "ro,nodev", "overlay"},
		{"/sysroot/usr/share", "ro,nodev", "overlay"},
	} {
		e, ok := topMount(table, h.dir+want.mp)
		if !ok || e.FSType != want.fstype || !strings.HasPrefix(e.Options, want.opts+",") {
			t.Errorf("%s: %+v, want %s %s", want.mp, e, want.fstype, want.opts)
		}
	}

	merged := mountTable(t)
	start = time.Now()
	again, err := Merge(h.root, h.ops, h.images, h.opts)
	t.Logf("Merge again (nothing to do): %v", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if got := mountTable(t); strings.Join(got, "\n") != strings.Join(merged, "\n") || len(again.Actions) != len(st.Actions) {
		t.Errorf("a second Merge changed the mounts")
	}

	start = time.Now()
	fewer, err := Merge(h.root, h.ops, h.images[:1], h.opts)
	t.Logf("Merge of another set (undo + merge): %v", time.Since(start))
	if err != nil || len(fewer.Problems()) > 0 {
		t.Fatalf("%v %q", err, fewer.Problems())
	}
	if got := h.read(t, attrPath); got != "/run/kairos-firmware/images/fwa/usr/lib/firmware\n" {
		t.Errorf("firmware_class.path %q", got)
	}
	if _, err := os.Stat(h.dir + "/sysroot/usr/lib/firmware/b.bin"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fwb-10's firmware still merged: %v", err)
	}

	start = time.Now()
	if err := Unmerge(h.root, h.ops, h.opts); err != nil {
		t.Fatal(err)
	}
	t.Logf("Unmerge: %v", time.Since(start))
	if got := mountTable(t); strings.Join(got, "\n") != strings.Join(baseline, "\n") {
		t.Errorf("mount table after Unmerge:\n%s\nbefore Merge:\n%s", strings.Join(got, "\n"), strings.Join(baseline, "\n"))
	}
	loopsFree(t, st)
	loopsFree(t, fewer)
	if _, err := os.Stat(h.dir + "/run/kairos-firmware"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RunDir left: %v", err)
	}
}

// crashEnv asks the test binary (TestMain) to run Merge and exit at the given kernel call,
// after it takes effect, as a killed process would.
const crashEnv = "KAIROS_FIRMWARE_MERGE_CRASH"

type crashRequest struct {
	Dir    string   `json:"dir"`
	Images []string `json:"images"`
	At     int      `json:"at"`
}

// exitOps exits the process right after its at-th call.
type exitOps struct {
	hostOps
	n, at int
}

func (e *exitOps) step(err error) error {
	if e.n++; e.n == e.at {
		os.Exit(3)
	}
	return err
}

func (e *exitOps) Mount(source, target, fstype string, flags uintptr, data string) error {
	return e.step(e.hostOps.Mount(source, target, fstype, flags, data))
}

func (e *exitOps) LoopAttach(file string, offset, size int64) (string, io.Closer, error) {
	dev, hold, err := e.hostOps.LoopAttach(file, offset, size)
	return dev, hold, e.step(err)
}

func (e *exitOps) WriteAttr(path, value string) error {
	return e.step(e.hostOps.WriteAttr(path, value))
}

// crashHelper is the child process of TestHostCrash: exit 3 is a crash, 0 a finished Merge.
func crashHelper(spec string) int {
	var req crashRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := hostfs.New(req.Dir)
	sys, err2 := hostfs.New(req.Dir + "/sysroot")
	if err != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, err, err2)
		return 1
	}
	var images []*manifests.Image
	for _, p := range req.Images {
		img, err := manifests.ReadEntry(sys, p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		images = append(images, img)
	}
	ops := &exitOps{hostOps: hostOps{attr: req.Dir + attrPath}, at: req.At}
	if _, err := Merge(root, ops, images, Options{Sysroot: "/sysroot"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestHostCrash kills a real Merge (a child process) right after each of its kernel calls —
// a loop device attached and not mounted yet, an image mounted and not journaled as done, ...
// — and checks that Unmerge then leaves the mount table as it was and frees the loop devices;
// and that a Merge after such a crash ends in the same mounts as one never interrupted.
func TestHostCrash(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	h := newHostSystem(t)
	var paths []string
	for _, img := range h.images {
		paths = append(paths, img.Path)
	}
	baseline := mountTable(t)
	run := func(at int) int {
		spec, _ := json.Marshal(crashRequest{Dir: h.dir, Images: paths, At: at})
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashEnv+"="+string(spec))
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &exit) && exit.ExitCode() == 3:
			return 3
		}
		t.Fatalf("crash helper: %v\n%s", err, out)
		return 0
	}
	// The mounts of an uninterrupted merge.
	if run(-1) != 0 {
		t.Fatal("the uninterrupted merge crashed")
	}
	reference := normalizeLoops(mountTable(t))
	if err := Unmerge(h.root, h.ops, h.opts); err != nil {
		t.Fatal(err)
	}
	points := 0
	for at := 1; ; at++ {
		if run(at) == 0 {
			break
		}
		points++
		st, err := Load(h.root, "")
		if err != nil {
			t.Fatalf("crash at call %d: %v", at, err)
		}
		if at%2 == 0 {
			// repaired by the next Merge
			if _, err := Merge(h.root, h.ops, h.images, h.opts); err != nil {
				t.Fatalf("Merge after a crash at call %d: %v", at, err)
			}
			if got := normalizeLoops(mountTable(t)); strings.Join(got, "\n") != strings.Join(reference, "\n") {
				t.Errorf("after a crash at call %d and a Merge:\n%s\nwant:\n%s", at, strings.Join(got, "\n"), strings.Join(reference, "\n"))
			}
		}
		if err := Unmerge(h.root, h.ops, h.opts); err != nil {
			t.Fatalf("Unmerge after a crash at call %d: %v", at, err)
		}
		if got := mountTable(t); strings.Join(got, "\n") != strings.Join(baseline, "\n") {
			t.Errorf("after a crash at call %d and Unmerge:\n%s\nbefore:\n%s", at, strings.Join(got, "\n"), strings.Join(baseline, "\n"))
		}
		loopsFree(t, st)
	}
	if points < 8 {
		t.Errorf("only %d crash points", points)
	}
	t.Logf("%d crash points", points)
}
