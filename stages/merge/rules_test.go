package merge

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// TestRefuseDirectoryOverSymlink: kairos#4290. When /usr/lib/firmware of the sysroot is a
// symlink, an overlay of /usr/lib would put the images' directory in its place: the /usr/lib
// merge is refused with the reason, while the firmware still reaches the kernel.
func TestRefuseDirectoryOverSymlink(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(f *fixture)
		want  string
	}{
		{"firmware directory is a symlink", func(f *fixture) {
			if err := os.RemoveAll(f.dir + "/sysroot/usr/lib/firmware"); err != nil {
				t.Fatal(err)
			}
			f.symlink("/sysroot/usr/lib/firmware", "/usr/local/lib/firmware")
		}, "image directories would replace symlinks of the sysroot (kairos#4290): fw's /usr/lib/firmware over the symlink /usr/lib/firmware -> /usr/local/lib/firmware"},
		{"hierarchy is a symlink", func(f *fixture) {
			if err := os.RemoveAll(f.dir + "/sysroot/usr/lib"); err != nil {
				t.Fatal(err)
			}
			f.symlink("/sysroot/usr/lib", "lib64")
			if err := os.MkdirAll(f.dir+"/sysroot/usr/lib64", 0o755); err != nil {
				t.Fatal(err)
			}
		}, "/usr/lib is a symlink in the sysroot: an overlay would put a directory in its place (kairos#4290)"},
		{"image ships the updates directory", func(f *fixture) {}, "fw's /usr/lib/firmware/updates over the symlink /usr/lib/firmware/updates -> /usr/local/lib/firmware"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			c.setup(f)
			files := firmwareFiles("fw", "a.bin")
			if strings.Contains(c.name, "updates") {
				files["usr/lib/firmware/updates/b.bin"] = "b"
			}
			img := f.dirImage("/var/lib/kairos/extensions/fw", files)
			st, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Merged) != 1 || !strings.Contains(st.Merged[0].Refused, c.want) {
				t.Fatalf("merged %+v\nwant refusal containing %q", st.Merged, c.want)
			}
			for _, call := range f.k.Calls {
				if strings.Contains(call, "/sysroot/usr") {
					t.Errorf("a call on the sysroot's /usr: %s", call)
				}
			}
			if got := f.read(attrPath); got != "/run/kairos-firmware/images/fw/usr/lib/firmware\n" {
				t.Errorf("firmware_class.path = %q", got)
			}
			if p := st.Problems(); len(p) != 1 || !strings.Contains(p[0], "/usr/lib: not merged") {
				t.Errorf("problems %q", p)
			}
		})
	}
}

// TestRefuseSysextMerge: a hierarchy systemd-sysext has merged is left to it.
func TestRefuseSysextMerge(t *testing.T) {
	f := newFixture(t)
	img := f.dirImage("/var/lib/kairos/extensions/fw", firmwareFiles("fw", "a.bin"))
	if err := f.k.Mount("sysext", f.dir+"/sysroot/usr/lib", "overlay", hierarchyFlags, "lowerdir=/run/systemd/sysext/meta/usr/lib:/x"); err != nil {
		t.Fatal(err)
	}
	// What the merged tree shows: systemd's marker naming the overlay's device.
	m := &merger{root: f.root}
	dev, _ := m.devOf("/sysroot/usr/lib")
	if err := os.MkdirAll(f.dir+"/sysroot/usr/lib/.systemd-sysext", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.dir+"/sysroot/usr/lib/.systemd-sysext/dev", []byte(dev+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Merged) != 1 || !strings.HasPrefix(st.Merged[0].Refused, "already merged by systemd-sysext (overlay from sysext)") {
		t.Errorf("merged %+v", st.Merged)
	}
	if err := Unmerge(f.root, f.k, f.opts); err != nil {
		t.Fatal(err)
	}
	if tab := f.k.table(f.dir); len(tab) != 1 || !strings.HasPrefix(tab[0], "$ROOT/sysroot/usr/lib overlay sysext") {
		t.Errorf("Unmerge touched systemd's merge: %q", tab)
	}
}

// TestLinks: images are linked into /run/extensions the way immucore links them, except
// those immucore links itself; an existing link to the same image is kept, anything else is
// left alone and reported; Unmerge removes only the links Merge made.
func TestLinks(t *testing.T) {
	f := newFixture(t)
	files := func(n string) map[string]string { return firmwareFiles(n, n+".bin") }
	active := f.dirImage("/var/lib/kairos/extensions/active/a-active", files("a-active"))
	flat := f.dirImage("/var/lib/kairos/extensions/b-flat", files("b-flat"))
	extra := f.dirImage("/oem/firmware/c-extra", files("c-extra"))
	same := f.dirImage("/oem/firmware/d-same", files("d-same"))
	taken := f.dirImage("/oem/firmware/e-taken", files("e-taken"))
	f.symlink("/run/extensions/d-same", "/oem/firmware/d-same")
	if err := os.WriteFile(f.dir+"/run/extensions/e-taken", []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Merge(f.root, f.k, []*manifests.Image{active, flat, extra, same, taken}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]LinkState{}
	for _, l := range st.Links {
		got[l.Image] = l
	}
	want := map[string]LinkState{
		"a-active": {Image: "a-active", Link: "/run/extensions/a-active", Target: "/var/lib/kairos/extensions/active/a-active", Skipped: "immucore links the images of /var/lib/kairos/extensions/active itself (enable-sysext-confext)"},
		"b-flat":   {Image: "b-flat", Link: "/run/extensions/b-flat", Target: "/var/lib/kairos/extensions/b-flat", Created: true},
		"c-extra":  {Image: "c-extra", Link: "/run/extensions/c-extra", Target: "/oem/firmware/c-extra", Created: true},
		"d-same":   {Image: "d-same", Link: "/run/extensions/d-same", Target: "/oem/firmware/d-same", Skipped: "linked already"},
		"e-taken":  {Image: "e-taken", Link: "/run/extensions/e-taken", Target: "/oem/firmware/e-taken", Error: "/run/extensions/e-taken exists and is not a symlink: left alone"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("links:\n%+v\nwant:\n%+v", got, want)
	}
	// The target is the path after the pivot: not prefixed with the sysroot.
	for _, n := range []string{"b-flat", "c-extra"} {
		if target, err := os.Readlink(f.dir + "/run/extensions/" + n); err != nil || target != want[n].Target {
			t.Errorf("%s -> %q, %v", n, target, err)
		}
	}
	if err := Unmerge(f.root, f.k, f.opts); err != nil {
		t.Fatal(err)
	}
	for n, kept := range map[string]bool{"b-flat": false, "c-extra": false, "d-same": true, "e-taken": true} {
		if f.exists("/run/extensions/"+n) != kept {
			t.Errorf("after Unmerge /run/extensions/%s exists: %v, want %v", n, !kept, kept)
		}
	}
	if f.read("/run/extensions/e-taken") != "a file" {
		t.Errorf("the file in the way was changed")
	}
}

// TestFirmwareClassPath: one image is given to the kernel as it is, several as an overlay; a
// directory longer than the 255 bytes the kernel takes is refused before anything is mounted
// for it; Unmerge gives the previous value back.
func TestFirmwareClassPath(t *testing.T) {
	t.Run("one image, previous value restored", func(t *testing.T) {
		f := newFixture(t)
		if err := os.WriteFile(f.dir+attrPath, []byte("/lib/custom\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		img := f.dirImage("/var/lib/kairos/extensions/fw", firmwareFiles("fw", "a.bin"))
		before := f.tree()
		st, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts)
		if err != nil {
			t.Fatal(err)
		}
		if st.Firmware.Dir != "/run/kairos-firmware/images/fw/usr/lib/firmware" || st.Firmware.Previous != "/lib/custom" || !st.Firmware.Written {
			t.Errorf("firmware %+v", st.Firmware)
		}
		for _, c := range f.k.Calls {
			if strings.Contains(c, "kairos-firmware/firmware") {
				t.Errorf("an overlay for one image: %s", c)
			}
		}
		unmergeClean(t, f, before)
		if w := f.k.Matching("write "); len(w) != 2 || w[1] != "write "+f.dir+attrPath+" /lib/custom" {
			t.Errorf("writes %q", w)
		}
	})
	for _, c := range []struct {
		name string
		pad  int // RunDir length beyond "/r/", giving RunDir/firmware this many bytes
		ok   bool
	}{{"255 bytes", 255, true}, {"256 bytes", 256, false}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.opts.RunDir = "/r/" + strings.Repeat("x", c.pad-len("/r/")-len("/firmware"))
			a := f.dirImage("/var/lib/kairos/extensions/a", firmwareFiles("a", "a.bin"))
			b := f.dirImage("/var/lib/kairos/extensions/b", firmwareFiles("b", "b.bin"))
			st, err := Merge(f.root, f.k, []*manifests.Image{a, b}, f.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(firmwareDir(f.opts.RunDir)) != c.pad {
				t.Fatalf("test setup: %d bytes", len(firmwareDir(f.opts.RunDir)))
			}
			wrote := len(f.k.Matching("write ")) == 1
			overlay := false
			for _, call := range f.k.Calls {
				overlay = overlay || strings.Contains(call, "/firmware overlay")
			}
			if wrote != c.ok || overlay != c.ok || st.Firmware.Written != c.ok {
				t.Errorf("wrote %v overlay %v written %v; want %v", wrote, overlay, st.Firmware.Written, c.ok)
			}
			if !c.ok && !strings.Contains(st.Firmware.Error, "is 256 bytes; firmware_class.path takes at most 255") {
				t.Errorf("error %q", st.Firmware.Error)
			}
		})
	}
}

func TestNoFirmwareNoAttribute(t *testing.T) {
	f := newFixture(t)
	img := f.dirImage("/var/lib/kairos/extensions/tools", map[string]string{"usr/bin/tool": "x", "usr/lib/extension-release.d/extension-release.tools": "ID=_any\n"})
	st, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.k.Matching("write ")) != 0 || st.Firmware.Dir != "" {
		t.Errorf("firmware_class.path written without firmware: %+v", st.Firmware)
	}
	// usr/lib holds the extension-release file: systemd-sysext merges /usr/lib for it too.
	if len(st.Merged) != 2 || st.Merged[0].Hierarchy != "/usr/bin" || st.Merged[1].Hierarchy != "/usr/lib" {
		t.Errorf("merged %+v", st.Merged)
	}
}

// TestImageFailureIsolated: an image that cannot be mounted is reported; the others go on.
func TestImageFailureIsolated(t *testing.T) {
	f := newFixture(t)
	a := f.dirImage("/var/lib/kairos/extensions/a", firmwareFiles("a", "a.bin"))
	b := f.dirImage("/var/lib/kairos/extensions/b", firmwareFiles("b", "b.bin"))
	missing := &manifests.Image{Name: "gone", Path: "/var/lib/kairos/extensions/gone.raw", Format: manifests.FormatErofs}
	f.k.fail = func(call string) error {
		if strings.Contains(call, "images/a ") && strings.HasPrefix(call, "mount /") {
			return os.ErrPermission
		}
		return nil
	}
	st, err := Merge(f.root, f.k, []*manifests.Image{a, b, missing}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	errs := map[string]string{}
	for _, im := range st.Images {
		errs[im.Name] = im.Error
	}
	if errs["a"] != "permission denied" || errs["b"] != "" || !strings.Contains(errs["gone"], "no such file or directory") {
		t.Errorf("image errors %q", errs)
	}
	if st.Firmware.Dir != "/run/kairos-firmware/images/b/usr/lib/firmware" || st.Merged[0].Data != "lowerdir="+f.dir+"/run/kairos-firmware/meta/usr/lib:"+f.dir+"/run/kairos-firmware/images/b/usr/lib:"+f.dir+"/sysroot/usr/lib" {
		t.Errorf("firmware %+v merged %+v", st.Firmware, st.Merged)
	}
	if got := f.read("/run/kairos-firmware/meta/usr/lib/.systemd-sysext/extensions"); got != "b\n" {
		t.Errorf("extensions %q", got)
	}
}
