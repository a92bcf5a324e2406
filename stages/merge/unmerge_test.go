package merge

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// TestUnmergeHalfDoneState: a journal written by a Merge that died between two actions (a
// mount done, the next one journaled but never made) is undone, the missing parts skipped.
func TestUnmergeHalfDoneState(t *testing.T) {
	f := newFixture(t)
	before := f.tree()
	for _, d := range []string{"/run/kairos-firmware/images/a", "/run/kairos-firmware/images/b"} {
		if err := os.MkdirAll(f.dir+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.k.Mount("/dev/loop7", f.dir+"/run/kairos-firmware/images/a", "erofs", imageFlags, ""); err != nil {
		t.Fatal(err)
	}
	st := State{Version: stateVersion, Sysroot: "/sysroot", RunDir: "/run/kairos-firmware", Actions: []Action{
		{Kind: ActMkdir, Path: "/run/kairos-firmware/images", Done: true},
		{Kind: ActMkdir, Path: "/run/kairos-firmware/images/a", Done: true},
		{Kind: ActLoop, Path: "/x/a.raw", Source: "/dev/loop7", Done: true},
		{Kind: ActMount, Path: "/run/kairos-firmware/images/a", Source: "/dev/loop7", FSType: "erofs", Flags: imageFlags, Done: true},
		{Kind: ActMkdir, Path: "/run/kairos-firmware/images/b", Done: true},
		{Kind: ActLoop, Path: "/x/b.raw"},
		{Kind: ActMount, Path: "/run/kairos-firmware/images/b", FSType: "squashfs", Flags: imageFlags},
	}}
	data, _ := json.Marshal(st)
	if err := os.WriteFile(f.dir+"/run/kairos-firmware/state.json", data, 0o600); err != nil {
		t.Fatal(err)
	}
	unmergeClean(t, f, before)
	if got := f.calls(); len(got) != 2 || got[1] != "unmount $ROOT/run/kairos-firmware/images/a 0xa" {
		t.Errorf("calls %q", got)
	}
}

// TestUnmergeLeavesOthersMounts: after the pivot systemd-sysext replaces Merge's hierarchy
// overlays with its own (refresh); Unmerge then leaves those alone. One stacked on top of a
// merge of Merge's keeps it in place, and Unmerge says so.
func TestUnmergeLeavesOthersMounts(t *testing.T) {
	f := newFixture(t)
	img := f.dirImage("/var/lib/kairos/extensions/fw", firmwareFiles("fw", "a.bin"))
	if _, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts); err != nil {
		t.Fatal(err)
	}
	usrLib := f.dir + "/sysroot/usr/lib"
	// systemd-sysext refresh: unmerge (ours), then its own merge
	if err := f.k.Unmount(usrLib, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := f.k.Mount("sysext", usrLib, "overlay", unix.MS_RDONLY, "lowerdir=x:y"); err != nil {
		t.Fatal(err)
	}
	if err := Unmerge(f.root, f.k, f.opts); err != nil {
		t.Fatal(err)
	}
	if tab := f.k.table(f.dir); len(tab) != 1 || !strings.HasPrefix(tab[0], "$ROOT/sysroot/usr/lib overlay sysext") {
		t.Errorf("mounts %q", tab)
	}
	if err := f.k.Unmount(usrLib, 0); err != nil {
		t.Fatal(err)
	}

	// Stacked: systemd's merge on top of ours.
	if _, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts); err != nil {
		t.Fatal(err)
	}
	if err := f.k.Mount("sysext", usrLib, "overlay", unix.MS_RDONLY, "lowerdir=x:y"); err != nil {
		t.Fatal(err)
	}
	err := Unmerge(f.root, f.k, f.opts)
	if err == nil || !strings.Contains(err.Error(), "/sysroot/usr/lib (overlay from sysext) is mounted over it; left in place") {
		t.Fatalf("Unmerge: %v", err)
	}
	st, lerr := Load(f.root, "")
	if lerr != nil || len(st.Actions) != 1 || st.Actions[0].Path != "/sysroot/usr/lib" || st.Complete {
		t.Fatalf("state after a partial Unmerge: %+v, %v", st, lerr)
	}
	// A Merge now goes on around it, keeping it in its journal for a later Unmerge.
	again, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Actions[0] != st.Actions[0] || !strings.Contains(strings.Join(again.Warnings, "\n"), "left in place") || !again.Complete {
		t.Errorf("Merge over a stuck mount: actions[0] %+v, warnings %q", again.Actions[0], again.Warnings)
	}
	if err := Unmerge(f.root, f.k, f.opts); err == nil {
		t.Fatal("Unmerge with the other mount in the way succeeded")
	}
	// Once the other mount is gone, Unmerge finishes.
	f.k.mounts = slices.DeleteFunc(f.k.mounts, func(e mountEntry) bool { return e.Source == "sysext" })
	f.k.write()
	if err := Unmerge(f.root, f.k, f.opts); err != nil {
		t.Fatal(err)
	}
	if tab := f.k.table(f.dir); len(tab) != 0 || f.exists("/run/kairos-firmware") {
		t.Errorf("left: %q", tab)
	}
}

// TestUnmergeAfterPivot: a State made in the initrd names /sysroot/usr/lib; after
// switch_root that mount is /usr/lib, and Unmerge with Sysroot "/" finds it there.
func TestUnmergeAfterPivot(t *testing.T) {
	f := newFixture(t)
	img := f.dirImage("/var/lib/kairos/extensions/fw", firmwareFiles("fw", "a.bin"))
	if _, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts); err != nil {
		t.Fatal(err)
	}
	// The pivot, as the fake kernel sees it: the sysroot's mounts move to /.
	if err := os.MkdirAll(f.dir+"/usr/lib", 0o755); err != nil {
		t.Fatal(err)
	}
	for i, e := range f.k.mounts {
		if mp, ok := strings.CutPrefix(e.MountPoint, f.dir+"/sysroot/"); ok {
			f.k.mounts[i].MountPoint = f.dir + "/" + mp
		}
	}
	f.k.write()
	opts := f.opts
	opts.Sysroot = "/"
	if err := Unmerge(f.root, f.k, opts); err != nil {
		t.Fatal(err)
	}
	if tab := f.k.table(f.dir); len(tab) != 0 {
		t.Errorf("left: %q", tab)
	}
	if n := len(f.k.Matching("unmount " + f.dir + "/usr/lib ")); n != 1 {
		t.Errorf("/usr/lib unmounted %d times", n)
	}
}
