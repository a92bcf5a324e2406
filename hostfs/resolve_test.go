package hostfs

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"
)

func TestResolveStaysUnderTheRoot(t *testing.T) {
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{
		"/var/lib/kairos/extensions/fw.sysext.raw": "image",
		"/var/lib/kairos/extensions/active":        &vfst.Dir{Perm: 0o755},
		"/run/extensions":                          &vfst.Dir{Perm: 0o755},
		"/etc/hostname":                            "inside",
		"/usr/lib/firmware/a.bin":                  "a",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	// vfst rewrites absolute link targets into its temporary directory; the links under test
	// must keep them as Kairos writes them, so they are made with os.Symlink.
	for link, target := range map[string]string{
		"/var/lib/kairos/extensions/active/fw.sysext.raw": "/var/lib/kairos/extensions/fw.sysext.raw",
		"/run/extensions/fw.sysext.raw":                   "/var/lib/kairos/extensions/active/fw.sysext.raw",
		"/run/extensions/rel.raw":                         "../../var/lib/kairos/extensions/fw.sysext.raw",
		"/run/extensions/escape.raw":                      "../../../../../../etc/hostname",
		"/run/extensions/loop.raw":                        "loop.raw",
		"/run/extensions/gone.raw":                        "/nowhere",
		"/lib":                                            "usr/lib",
	} {
		if err := os.Symlink(target, fsys.TempDir()+link); err != nil {
			t.Fatal(err)
		}
	}
	r := FromFS(fsys.TempDir(), fsys)
	for in, want := range map[string]string{
		"/run/extensions/fw.sysext.raw": "/var/lib/kairos/extensions/fw.sysext.raw", // two absolute links
		"/run/extensions/rel.raw":       "/var/lib/kairos/extensions/fw.sysext.raw",
		"/run/extensions/escape.raw":    "/etc/hostname", // ".." stops at the root
		"/lib/firmware/a.bin":           "/usr/lib/firmware/a.bin",
		"/usr/lib/../lib/firmware":      "/usr/lib/firmware",
	} {
		got, err := r.Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := r.Resolve("/run/extensions/loop.raw"); !errors.Is(err, ErrSymlinkLoop) {
		t.Errorf("loop: %v", err)
	}
	if _, err := r.Resolve("/run/extensions/gone.raw"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling: %v", err)
	}
}

func TestResolveChainRecordsEveryLinkAndWhereItBreaks(t *testing.T) {
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{
		"/a":      &vfst.Symlink{Target: "b"},
		"/b":      &vfst.Symlink{Target: "d/f"},
		"/d":      &vfst.Symlink{Target: "real"},
		"/real/f": "f",
		"/x":      &vfst.Symlink{Target: "real/missing"},
		"/loop":   &vfst.Symlink{Target: "loop"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	root := FromFS(fsys.TempDir(), fsys)
	c, err := root.ResolveChain("/a")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Links, []string{"/a", "/b", "/d"}) || c.Final != "/real/f" {
		t.Errorf("chain %+v", c)
	}
	c, err = root.ResolveChain("/x")
	if err == nil {
		t.Fatal("a broken link resolved")
	}
	if !reflect.DeepEqual(c.Links, []string{"/x"}) || c.Missing != "/real/missing" {
		t.Errorf("broken chain %+v", c)
	}
	c, err = root.ResolveChain("/loop")
	if !errors.Is(err, ErrSymlinkLoop) || c.Missing != "/loop" || len(c.Links) != MaxSymlinks {
		t.Errorf("a link to itself: %+v, %v", c, err)
	}
	// ".." stops at the root, as in a chroot.
	if c, err := root.ResolveChain("/../../real/f"); err != nil || c.Final != "/real/f" {
		t.Errorf("/../../real/f = %+v, %v", c, err)
	}
}
