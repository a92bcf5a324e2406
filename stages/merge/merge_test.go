package merge

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// threeImages are a directory image, an erofs one and a squashfs one, named so that the
// version-aware order (extra < fw-9 < fw-10) differs from the byte order.
func threeImages(f *fixture) []*manifests.Image {
	extra := f.dirImage("/var/lib/kairos/extensions/extra", mergeMaps(firmwareFiles("extra", "shared.bin", "extra/e.bin"),
		map[string]string{"usr/share/doc/extra/README": "extra docs"}))
	fw9 := f.fileImage("/var/lib/kairos/extensions/fw-9.raw", manifests.FormatErofs, firmwareFiles("fw-9", "shared.bin", "vendor/nine.bin"))
	fw10 := f.fileImage("/var/lib/kairos/extensions/fw-10.raw", manifests.FormatSquashfs, firmwareFiles("fw-10", "shared.bin", "vendor/ten.bin"))
	return []*manifests.Image{fw10, extra, fw9}
}

func mergeMaps(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func TestMergeCalls(t *testing.T) {
	f := newFixture(t)
	st, err := Merge(f.root, f.k, threeImages(f), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Problems(); len(p) > 0 {
		t.Fatalf("problems: %q", p)
	}
	img := func(n string) string { return "$ROOT/run/kairos-firmware/images/" + n }
	want := []string{
		// images, oldest version first: a directory by a bind mount made read-only ...
		"mount $ROOT/sysroot/var/lib/kairos/extensions/extra " + img("extra") + "  0x1000 ",
		"mount  " + img("extra") + "  0x1027 ",
		// ... files through loop devices, read-only, nodev, nosuid
		"loop $ROOT/sysroot/var/lib/kairos/extensions/fw-9.raw 0 0 -> /dev/loop0",
		"mount /dev/loop0 " + img("fw-9") + " erofs 0x7 ",
		"loop $ROOT/sysroot/var/lib/kairos/extensions/fw-10.raw 0 0 -> /dev/loop1",
		"mount /dev/loop1 " + img("fw-10") + " squashfs 0x7 ",
		// the firmware of all three, newest on top, given to the kernel
		"mount kairos-firmware $ROOT/run/kairos-firmware/firmware overlay 0x7 lowerdir=" +
			img("fw-10") + "/usr/lib/firmware:" + img("fw-9") + "/usr/lib/firmware:" + img("extra") + "/usr/lib/firmware",
		"write $ROOT/sys/module/firmware_class/parameters/path /run/kairos-firmware/firmware",
		// the hierarchies they populate, the sysext way: meta on top, the host's at the bottom
		"mount kairos-firmware $ROOT/sysroot/usr/share overlay 0x5 lowerdir=$ROOT/run/kairos-firmware/meta/usr/share:" +
			img("extra") + "/usr/share:$ROOT/sysroot/usr/share",
		"mount kairos-firmware $ROOT/sysroot/usr/lib overlay 0x5 lowerdir=$ROOT/run/kairos-firmware/meta/usr/lib:" +
			img("fw-10") + "/usr/lib:" + img("fw-9") + "/usr/lib:" + img("extra") + "/usr/lib:$ROOT/sysroot/usr/lib",
	}
	if got := f.calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, h := range []string{"/usr/lib", "/usr/share"} {
		marker := "/run/kairos-firmware/meta" + h + "/.systemd-sysext/"
		if got := f.read(marker + "extensions"); got != "extra\nfw-9\nfw-10\n" {
			t.Errorf("%s extensions = %q", h, got)
		}
		m := &merger{root: f.root}
		dev, err := m.devOf("/sysroot" + h)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.read(marker + "dev"); got != dev+"\n" {
			t.Errorf("%s dev = %q, want %q", h, got, dev+"\n")
		}
	}
	if got := f.read(attrPath); got != "/run/kairos-firmware/firmware\n" {
		t.Errorf("firmware_class.path = %q", got)
	}
	if st.Firmware.Dir != "/run/kairos-firmware/firmware" || !reflect.DeepEqual(st.Firmware.Layers, []string{"fw-10", "fw-9", "extra"}) {
		t.Errorf("firmware %+v", st.Firmware)
	}
	// state.json is the returned State, complete
	saved, err := Load(f.root, "")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(st)
	b, _ := json.Marshal(saved)
	if string(a) != string(b) || !saved.Complete {
		t.Errorf("state.json differs from the returned State:\n%s\n%s", b, a)
	}
	// every action is journaled and done, in order
	var kinds []string
	for _, a := range st.Actions {
		if !a.Done || a.Error != "" {
			t.Errorf("action not done: %+v", a)
		}
		kinds = append(kinds, a.Kind)
	}
	t.Logf("journal: %s", strings.Join(kinds, " "))
}

// unmergeClean checks that Unmerge leaves the fixture as before Merge: no mounts, no links,
// no RunDir, the attribute as it was, except that an empty one cannot be given back (see
// restoreAttr) and keeps Merge's value.
func unmergeClean(t *testing.T, f *fixture, before []string) {
	t.Helper()
	attrBefore := f.read(attrPath)
	if err := Unmerge(f.root, f.k, f.opts); err != nil {
		t.Fatal(err)
	}
	if tab := f.k.table(f.dir); len(tab) != 0 {
		t.Errorf("mounts left after Unmerge:\n%s", strings.Join(tab, "\n"))
	}
	after := f.tree()
	for i, l := range before {
		if strings.HasPrefix(l, attrPath+" = ") && l == attrPath+" = \n" {
			before = append([]string{}, before...)
			before[i] = attrPath + " = " + attrBefore
		}
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("tree after Unmerge differs:\n%s\nbefore:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
}

func TestMergeTwiceChangesNothing(t *testing.T) {
	f := newFixture(t)
	images := threeImages(f)
	before := f.tree()
	first, err := Merge(f.root, f.k, images, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	calls, table := len(f.k.Calls), f.k.table(f.dir)
	second, err := Merge(f.root, f.k, images, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.k.Calls) != calls {
		t.Errorf("the second Merge made calls: %q", f.calls()[calls:])
	}
	if !reflect.DeepEqual(f.k.table(f.dir), table) {
		t.Errorf("mounts changed")
	}
	if !reflect.DeepEqual(first.Actions, second.Actions) {
		t.Errorf("the second Merge returned another State")
	}
	// Something of it gone (an image unmounted behind Merge's back): Merge repairs.
	if err := f.k.Unmount(f.dir+"/run/kairos-firmware/images/fw-9", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(f.root, f.k, images, f.opts); err != nil {
		t.Fatal(err)
	}
	if got := f.k.table(f.dir); !reflect.DeepEqual(normalizeLoops(got), normalizeLoops(table)) {
		t.Errorf("repaired mounts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(table, "\n"))
	}
	unmergeClean(t, f, before)
}

// normalizeLoops hides loop device numbers, which change from one attach to the next.
func normalizeLoops(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = loopRE.ReplaceAllString(l, "/dev/loopN")
	}
	return out
}

func TestMergeAnotherSet(t *testing.T) {
	f := newFixture(t)
	images := threeImages(f)
	before := f.tree()
	if _, err := Merge(f.root, f.k, images, f.opts); err != nil {
		t.Fatal(err)
	}
	// fw-9 dropped: everything is undone and made again with two images.
	st, err := Merge(f.root, f.k, []*manifests.Image{images[0], images[1]}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	var mps []string
	for _, l := range f.k.table(f.dir) {
		mps = append(mps, strings.Fields(l)[0])
	}
	want := []string{"$ROOT/run/kairos-firmware/images/extra", "$ROOT/run/kairos-firmware/images/fw-10", "$ROOT/run/kairos-firmware/firmware", "$ROOT/sysroot/usr/share", "$ROOT/sysroot/usr/lib"}
	if !reflect.DeepEqual(mps, want) {
		t.Errorf("mounts %q, want %q", mps, want)
	}
	if got := f.read("/run/kairos-firmware/meta/usr/lib/.systemd-sysext/extensions"); got != "extra\nfw-10\n" {
		t.Errorf("extensions %q", got)
	}
	if f.exists("/run/kairos-firmware/images/fw-9") || f.exists("/run/extensions/fw-9.raw") {
		t.Errorf("fw-9's mount point or link left behind")
	}
	if len(st.Images) != 2 {
		t.Errorf("images %+v", st.Images)
	}
	unmergeClean(t, f, before)
}

func TestDryRunTouchesNothing(t *testing.T) {
	f := newFixture(t)
	images := threeImages(f)
	before := f.tree()
	opts := f.opts
	opts.DryRun = true
	st, err := Merge(f.root, f.k, images, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.k.Calls) != 0 {
		t.Errorf("a dry run made calls: %q", f.calls())
	}
	if after := f.tree(); !reflect.DeepEqual(after, before) {
		t.Errorf("a dry run changed the tree")
	}
	if !st.DryRun || st.Complete {
		t.Errorf("dry run State: DryRun %v Complete %v", st.DryRun, st.Complete)
	}
	// The same steps as a real merge, in the same order.
	real, err := Merge(f.root, f.k, images, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	var dry, done []string
	for _, a := range st.Actions {
		dry = append(dry, a.Kind+" "+a.Path)
	}
	for _, a := range real.Actions {
		done = append(done, a.Kind+" "+a.Path)
	}
	if !reflect.DeepEqual(dry, done) {
		t.Errorf("dry run:\n%s\nreal:\n%s", strings.Join(dry, "\n"), strings.Join(done, "\n"))
	}
	for _, a := range st.Actions {
		t.Log(a)
	}
}

var loopRE = regexp.MustCompile(`/dev/loop[0-9]+`)
