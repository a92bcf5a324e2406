package merge

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// The differential tests merge the same images into two copies of one root, with
// `systemd-sysext --root=DIR merge` and with Merge, and compare what each made: the overlay's
// options (the order of the layers), the marker files, the merged tree. Then systemd-sysext
// must take Merge's merge for one of its own: `unmerge` removes it, `refresh` replaces it with
// its own instead of stacking on it. systemd-sysext forks into a mount namespace of its own
// and binds its overlays into place from there, so the roots live on a tmpfs made shared (in
// the test's private namespace), to which that bind propagates back; /run is a tmpfs of the
// namespace too (systemd's workspace is /run/systemd/sysext).

func TestHostSysextDefaultHierarchies(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	differential(t, SystemdHierarchies)
}

func TestHostSysextKairosHierarchies(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	differential(t, DefaultHierarchies)
}

func differential(t *testing.T, hierarchies []string) {
	sysext := testkernel.Tool(t, "systemd-sysext")
	out, _ := exec.Command(sysext, "--version").Output()
	t.Logf("%s", strings.SplitN(string(out), "\n", 2)[0])
	baseline := mountTable(t)
	mountTmpfs(t, "/run")
	base := filepath.Join(t.TempDir(), "diff")
	mountTmpfs(t, base)
	if err := unix.Mount("", base, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	sd, ours := filepath.Join(base, "sd"), filepath.Join(base, "ours")
	erofs := buildImage(t, manifests.FormatErofs, mergeMaps(firmwareFiles("fwa", "a.bin", "shared.bin"), map[string]string{"usr/share/doc/fwa/README": "fwa docs", "opt/fwa/tool": "tool"}))
	squashfs := buildImage(t, manifests.FormatSquashfs, firmwareFiles("fwb-10", "b.bin", "shared.bin", "vendor/b2.bin"))
	for _, dir := range []string{sd, ours} {
		imagetest.WriteTree(t, dir, map[string]string{
			"usr/lib/firmware/host.bin":                     "host",
			"usr/lib/firmware/updates":                      "->/usr/local/lib/firmware",
			"usr/lib/os-release":                            "ID=kairos\nVERSION_ID=1\n",
			"usr/bin/sh":                                    "sh",
			"usr/share/doc/base/README":                     "base",
			"usr/local/lib/firmware/.keep":                  "",
			"var/lib/extensions/fwd/usr/lib/firmware/d.bin": "fwd:d.bin",
			"var/lib/extensions/fwd/usr/lib/extension-release.d/extension-release.fwd": "ID=_any\n",
		})
		if err := os.Mkdir(filepath.Join(dir, "opt"), 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, erofs, filepath.Join(dir, "var/lib/extensions/fwa.raw"))
		copyFile(t, squashfs, filepath.Join(dir, "var/lib/extensions/fwb-10.raw"))
	}
	env := append(os.Environ(), "SYSTEMD_SYSEXT_HIERARCHIES="+strings.Join(hierarchies, ":"))
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(sysext, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("systemd-sysext %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("--root="+sd, "merge")
	afterSystemd := mountTable(t)

	root, err := hostfs.New("/")
	if err != nil {
		t.Fatal(err)
	}
	target, err := hostfs.New(ours)
	if err != nil {
		t.Fatal(err)
	}
	var images []*manifests.Image
	for _, p := range []string{"/var/lib/extensions/fwa.raw", "/var/lib/extensions/fwb-10.raw", "/var/lib/extensions/fwd"} {
		img, err := manifests.ReadEntry(target, p)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	attr := filepath.Join(base, "firmware_class.path")
	if err := os.WriteFile(attr, []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ops := hostOps{attr: attr}
	opts := Options{Sysroot: ours, Hierarchies: hierarchies, FirmwareClassPath: attr}
	st, err := Merge(root, ops, images, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Problems(); len(p) > 0 {
		t.Fatalf("problems: %q", p)
	}

	table, err := readMountInfo("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	merged := 0
	for _, h := range hierarchies {
		a, aok := topMount(table, sd+h)
		b, bok := topMount(table, ours+h)
		if aok != bok {
			t.Errorf("%s: merged by systemd-sysext %v, by Merge %v", h, aok, bok)
			continue
		}
		if !aok {
			continue
		}
		merged++
		t.Logf("%s: systemd-sysext: %s %s %s\n  Merge: %s %s %s", h, a.Options, a.Source, a.Super, b.Options, b.Source, b.Super)
		la := layers(a.Super, map[string]string{"/run/systemd/sysext/meta" + h: "META", "/run/systemd/sysext/extensions/": "EXT:", sd + h: "HOST"}, h)
		lb := layers(b.Super, map[string]string{"/run/kairos-firmware/meta" + h: "META", "/run/kairos-firmware/images/": "EXT:", ours + h: "HOST"}, h)
		if la != lb {
			t.Errorf("%s: overlay options differ:\nsystemd-sysext: %s\nMerge:          %s", h, la, lb)
		}
		if a.FSType != "overlay" || b.FSType != "overlay" {
			t.Errorf("%s: types %s, %s", h, a.FSType, b.FSType)
		}
		// Per-mount flags: systemd 252 mounts MS_RDONLY, later versions MS_RDONLY|MS_NODEV,
		// as Merge does.
		if !hasOption(b.Options, "nodev") || strings.ReplaceAll(a.Options, ",nodev", "") != strings.ReplaceAll(b.Options, ",nodev", "") {
			t.Errorf("%s: mount options %q (systemd-sysext), %q (Merge)", h, a.Options, b.Options)
		}
		for _, f := range []string{"extensions"} {
			x, _ := os.ReadFile(filepath.Join(sd+h, markerDir, f))
			y, _ := os.ReadFile(filepath.Join(ours+h, markerDir, f))
			if string(x) != string(y) || len(x) == 0 {
				t.Errorf("%s: %s %q (systemd-sysext), %q (Merge)", h, f, x, y)
			}
		}
		for _, dir := range []string{sd + h, ours + h} {
			var fi unix.Stat_t
			if err := unix.Lstat(dir, &fi); err != nil {
				t.Fatal(err)
			}
			dev, _ := os.ReadFile(filepath.Join(dir, markerDir, "dev"))
			if want := fmt.Sprintf("%d:%d\n", unix.Major(fi.Dev), unix.Minor(fi.Dev)); string(dev) != want {
				t.Errorf("%s/.systemd-sysext/dev = %q, want %q", dir, dev, want)
			}
		}
		if x, y := listing(t, sd+h), listing(t, ours+h); strings.Join(x, "\n") != strings.Join(y, "\n") {
			t.Errorf("%s: merged trees differ:\nsystemd-sysext:\n%s\nMerge:\n%s", h, strings.Join(x, "\n"), strings.Join(y, "\n"))
		}
	}
	if merged < 2 {
		t.Errorf("only %d hierarchies merged", merged)
	}

	// systemd-sysext takes Merge's merge for its own: unmerge removes it.
	run("--root="+ours, "unmerge")
	table, _ = readMountInfo("/proc/self/mountinfo")
	for _, h := range hierarchies {
		if e, ok := topMount(table, ours+h); ok {
			t.Errorf("%s still mounted after systemd-sysext unmerge: %+v", h, e)
		}
	}
	if err := Unmerge(root, ops, opts); err != nil {
		t.Fatal(err)
	}
	if got := mountTable(t); strings.Join(got, "\n") != strings.Join(afterSystemd, "\n") {
		t.Errorf("after systemd-sysext unmerge and Unmerge:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(afterSystemd, "\n"))
	}

	// refresh replaces Merge's merge with its own, one overlay per hierarchy.
	if _, err := Merge(root, ops, images, opts); err != nil {
		t.Fatal(err)
	}
	run("--root="+ours, "refresh")
	table, _ = readMountInfo("/proc/self/mountinfo")
	for _, h := range hierarchies {
		var on []mountEntry
		for _, e := range table {
			if e.MountPoint == ours+h {
				on = append(on, e)
			}
		}
		if _, populated := topMount(table, sd+h); !populated {
			continue
		}
		if len(on) != 1 || on[0].Source != "sysext" {
			t.Errorf("%s after systemd-sysext refresh: %+v, want systemd's merge alone", h, on)
		}
	}
	if err := Unmerge(root, ops, opts); err != nil {
		t.Fatal(err)
	}
	run("--root="+ours, "unmerge")
	run("--root="+sd, "unmerge")
	unix.Unmount(base, unix.MNT_DETACH)
	unix.Unmount("/run", unix.MNT_DETACH)
	if got := mountTable(t); strings.Join(got, "\n") != strings.Join(baseline, "\n") {
		t.Errorf("mount table at the end:\n%s\nat the start:\n%s", strings.Join(got, "\n"), strings.Join(baseline, "\n"))
	}
}

// layers renders an overlay's superblock options with the layer paths named: META, EXT:<name>,
// HOST.
func layers(super string, names map[string]string, h string) string {
	var opts []string
	for _, o := range strings.Split(super, ",") {
		v, ok := strings.CutPrefix(o, "lowerdir=")
		if !ok {
			opts = append(opts, o)
			continue
		}
		var ls []string
		for _, l := range strings.Split(v, ":") {
			name := l
			for prefix, n := range names {
				if l == prefix {
					name = n
				} else if rest, ok := strings.CutPrefix(l, prefix); ok && strings.HasSuffix(prefix, "/") {
					name = n + strings.TrimSuffix(rest, h)
				}
			}
			ls = append(ls, name)
		}
		opts = append(opts, "lowerdir="+strings.Join(ls, ":"))
	}
	return strings.Join(opts, ",")
}

// listing is every entry under dir with its type, permissions and content.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, dir)
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular() && filepath.Base(p) != "dev":
			data, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
