package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
	"github.com/kairos-io/kairos-firmware/manifests/sysextcheck"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// The differential test: every image below is judged by the real `systemd-sysext --root=DIR
// merge` (alone in a fake root, inside a private mount namespace) and by manifests.Read plus
// sysextcheck.Check. Both must agree on merged or refused, and on which partition's content
// is merged. Where this systemd differs from the newer rules manifests follows (image names,
// docs/images.md), the case names the difference and the version that removes it; the test
// then asserts the difference itself.

// hosts are the fake roots' os-release files.
var diffHosts = map[string]string{
	"debian":  "ID=debian\nVERSION_ID=12\nID_LIKE=\"ubuntu kairos\"\nPRETTY_NAME=\"fake\"\n",
	"kairos":  "ID=kairos\nVERSION_ID=3.1\nSYSEXT_LEVEL=2\n",
	"rolling": "ID=arch\n",
}

const markerPath = "usr/share/kfw-test/marker"

type diffCase struct {
	name    string
	host    string // key of diffHosts; "" is "debian"
	release string // extension-release content; "-" for no file
	// releaseFor names the release file (extension-release.<releaseFor>); "" is the image name
	releaseFor string
	files      map[string]string // more files in the image ("->x": a symlink to x)
	formats    []string          // of "directory", "squashfs", "erofs", "gpt"
	// file is the image's file name in the store ("" = <name>.raw, or <name> for a directory)
	file string
	// ddi builds a custom GPT layout from the image tree src (format "gpt" only)
	ddi func(t *testing.T, src, dir string) []gpttest.Part
	// merged is the verdict expected from us; marker the merged content (default: the name)
	merged bool
	marker string
	// agreeFrom: systemd older than this version decides the opposite of us (a documented
	// difference); 0 means systemd and we always agree.
	agreeFrom int
	differs   string
}

var allFormats = []string{"directory", "squashfs", "erofs", "gpt"}

func diffCases() []diffCase {
	rel := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
	return []diffCase{
		// AuroraBoot's sysext output: ID=_any, ARCHITECTURE, no SYSEXT_SCOPE
		{name: "auroraboot", release: rel("ID=_any", "ARCHITECTURE=x86-64"), formats: allFormats, merged: true},
		{name: "any-arch", release: rel("ID=_any", "ARCHITECTURE=_any"), formats: allFormats, merged: true},
		{name: "no-arch", release: rel("ID=_any"), formats: []string{"directory", "erofs"}, merged: true},
		{name: "arch-arm64", release: rel("ID=_any", "ARCHITECTURE=arm64"), formats: allFormats},
		{name: "arch-x86", release: rel("ID=_any", "ARCHITECTURE=x86"), formats: []string{"directory", "squashfs"}},
		{name: "arch-duplicate", release: rel("ID=_any", "ARCHITECTURE=arm64", "ARCHITECTURE=x86-64"), formats: []string{"directory"}, merged: true},
		// SYSEXT_SCOPE: systemd-sysext asks for "system" outside an initrd
		{name: "scope-system", release: rel("ID=_any", "SYSEXT_SCOPE=system"), formats: []string{"directory", "erofs"}, merged: true},
		{name: "scope-initrd", release: rel("ID=_any", "SYSEXT_SCOPE=initrd"), formats: allFormats},
		{name: "scope-both", release: rel("ID=_any", "SYSEXT_SCOPE=\"initrd system\""), formats: []string{"directory", "gpt"}, merged: true},
		{name: "scope-portable", release: rel("ID=_any", "SYSEXT_SCOPE=portable"), formats: []string{"directory", "squashfs"}},
		{name: "scope-empty", release: rel("ID=_any", "SYSEXT_SCOPE="), formats: []string{"directory"}},
		{name: "scope-tabs", release: rel("ID=_any", "SYSEXT_SCOPE='portable\tsystem'"), formats: []string{"erofs"}, merged: true},
		// ID
		{name: "id-match", release: rel("ID=debian", "VERSION_ID=12"), formats: allFormats, merged: true},
		{name: "id-other", release: rel("ID=fedora", "VERSION_ID=12"), formats: []string{"directory", "erofs"}},
		{name: "id-like", release: rel("ID=ubuntu", "VERSION_ID=12"), formats: []string{"directory", "gpt"}},
		{name: "id-missing", release: rel("ARCHITECTURE=x86-64", "VERSION_ID=12"), formats: []string{"directory", "squashfs"}},
		{name: "id-quoted", release: rel("# built by a test", "ID=\"_any\" ", "  ARCHITECTURE='x86-64'"), formats: []string{"erofs"}, merged: true},
		// VERSION_ID and SYSEXT_LEVEL
		{name: "version-other", release: rel("ID=debian", "VERSION_ID=11"), formats: []string{"directory", "squashfs", "gpt"}},
		{name: "version-missing", release: rel("ID=debian"), formats: []string{"directory"}},
		{name: "any-ignores-version", release: rel("ID=_any", "VERSION_ID=1"), formats: []string{"directory"}, merged: true},
		{name: "level-match", host: "kairos", release: rel("ID=kairos", "SYSEXT_LEVEL=2", "VERSION_ID=9"), formats: []string{"directory", "erofs"}, merged: true},
		{name: "level-other", host: "kairos", release: rel("ID=kairos", "SYSEXT_LEVEL=1", "VERSION_ID=3.1"), formats: []string{"directory", "squashfs"}},
		{name: "level-none-version", host: "kairos", release: rel("ID=kairos", "VERSION_ID=3.1"), formats: []string{"directory"}, merged: true},
		{name: "level-none-version-other", host: "kairos", release: rel("ID=kairos", "VERSION_ID=3.0"), formats: []string{"directory"}},
		{name: "rolling", host: "rolling", release: rel("ID=arch", "VERSION_ID=7"), formats: []string{"directory", "erofs"}, merged: true},
		// the release file and forbidden content
		{name: "release-missing", release: "-", formats: []string{"directory", "erofs"}},
		{name: "release-empty", release: rel("# nothing", ""), formats: []string{"directory"}},
		{name: "release-other-name", release: rel("ID=_any"), releaseFor: "something", formats: []string{"directory"}},
		{name: "os-release", release: rel("ID=_any"), files: map[string]string{"usr/lib/os-release": "ID=evil\n"}, formats: []string{"directory", "erofs", "gpt"}},
		{name: "os-release-link", release: rel("ID=_any"), files: map[string]string{"usr/lib/os-release": "->../../etc/os-release", "etc/os-release": "ID=x\n"}, formats: []string{"squashfs"}},
		{name: "os-release-dangling", release: rel("ID=_any"), files: map[string]string{"usr/lib/os-release": "->/nowhere"}, formats: []string{"directory", "erofs"}, merged: true},
		// documented differences: image names (systemd v256 strips ".sysext" and falls back to
		// the release file of the name cut at "_")
		{name: "versioned", file: "versioned_2.raw", releaseFor: "versioned", release: rel("ID=_any"), formats: []string{"erofs"}, merged: true,
			agreeFrom: 256, differs: "systemd < 256 has no fallback to the name before \"_\""},
		{name: "sysext-suffix", file: "sysext-suffix.sysext.raw", release: rel("ID=_any"), formats: []string{"erofs"}, merged: true,
			agreeFrom: 256, differs: "systemd < 256 names sysext-suffix.sysext.raw \"sysext-suffix.sysext\""},
		{name: "sysext-suffix-old", file: "sysext-suffix-old.sysext.raw", releaseFor: "sysext-suffix-old.sysext", release: rel("ID=_any"), formats: []string{"erofs"},
			agreeFrom: 256, differs: "systemd < 256 names the image \"sysext-suffix-old.sysext\", which this release file is for"},
		// GPT layouts: which partition systemd-sysext mounts
		{name: "gpt-usr-only", release: rel("ID=_any", "ARCHITECTURE=x86-64"), formats: []string{"gpt"}, merged: true, ddi: usrOnlyDDI},
		{name: "gpt-root-and-usr", release: rel("ID=_any"), formats: []string{"gpt"}, merged: true, marker: "from the usr partition", ddi: rootAndUsrDDI},
		{name: "gpt-squashfs", release: rel("ID=_any"), formats: []string{"gpt"}, merged: true, ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			return []gpttest.Part{{Type: "root", Format: "squashfs", CopyFiles: src + ":/", Verity: "data", VerityMatchKey: "r"}, {Type: "root-verity", Verity: "hash", VerityMatchKey: "r"}}
		}},
		{name: "gpt-other-arch", release: rel("ID=_any"), formats: []string{"gpt"}, merged: true, ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			return []gpttest.Part{{Type: "root-arm64", CopyBlocks: erofsOf(t, src, dir, "")}}
		}},
		{name: "gpt-ab", release: rel("ID=_any"), formats: []string{"gpt"}, merged: true, marker: "B", ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			return []gpttest.Part{{Type: "root", Label: "fw_1.9", CopyBlocks: erofsOf(t, src, dir, "A")},
				{Type: "root", Label: "fw_1.10", CopyBlocks: erofsOf(t, src, dir, "B")},
				{Type: "root", Label: "fw_1.2", CopyBlocks: erofsOf(t, src, dir, "C")}}
		}},
		{name: "gpt-no-auto", release: rel("ID=_any"), formats: []string{"gpt"}, merged: true, marker: "secondary", ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			return []gpttest.Part{{Type: "root", CopyBlocks: erofsOf(t, src, dir, "no-auto"), Extra: []string{"NoAuto=yes"}},
				{Type: "root-x86", CopyBlocks: erofsOf(t, src, dir, "secondary")}}
		}},
		{name: "gpt-generic", release: rel("ID=_any"), formats: []string{"gpt"}, merged: true, ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			return []gpttest.Part{{Type: "linux-generic", CopyBlocks: erofsOf(t, src, dir, "")}}
		}},
		{name: "gpt-two-generic", release: rel("ID=_any"), formats: []string{"gpt"}, ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			img := erofsOf(t, src, dir, "")
			return []gpttest.Part{{Type: "linux-generic", CopyBlocks: img}, {Type: "linux-generic", CopyBlocks: img}}
		}},
		{name: "gpt-verity-no-root", release: rel("ID=_any"), formats: []string{"gpt"}, ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			img := erofsOf(t, filepath.Join(src, "usr"), dir, "")
			return []gpttest.Part{{Type: "usr", CopyBlocks: img}, {Type: "root-verity", CopyBlocks: img}}
		}},
		{name: "gpt-esp-only", release: rel("ID=_any"), formats: []string{"gpt"}, ddi: func(t *testing.T, src, dir string) []gpttest.Part {
			return []gpttest.Part{{Type: "esp", CopyBlocks: erofsOf(t, src, dir, "")}}
		}},
	}
}

// erofsOf builds an erofs image of src (with marker, if not "", replacing the marker file).
func erofsOf(t *testing.T, src, dir, marker string) string {
	if marker != "" {
		if rel := filepath.Join(src, markerPath); fileExists(rel) {
			os.WriteFile(rel, []byte(marker), 0o644)
		}
	}
	out := filepath.Join(dir, fmt.Sprintf("part%d.erofs", len(must(os.ReadDir(dir)))))
	imagetest.Erofs(t, out, src)
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func fileExists(p string) bool { _, err := os.Lstat(p); return err == nil }

// usrOnlyDDI: a /usr partition (with verity) whose filesystem is the tree's usr directory.
func usrOnlyDDI(t *testing.T, src, dir string) []gpttest.Part {
	img := erofsOf(t, filepath.Join(src, "usr"), dir, "")
	return []gpttest.Part{{Type: "usr", CopyBlocks: img, Verity: "data", VerityMatchKey: "u"}, {Type: "usr-verity", Verity: "hash", VerityMatchKey: "u"}}
}

// rootAndUsrDDI: a root partition whose usr holds a decoy release and marker, covered by a
// /usr partition with the real ones.
func rootAndUsrDDI(t *testing.T, src, dir string) []gpttest.Part {
	decoy := t.TempDir()
	imagetest.WriteTree(t, decoy, map[string]string{
		markerPath: "from the root partition",
		"usr/lib/extension-release.d/extension-release.gpt-root-and-usr": "ID=none-such\n",
		"etc/hostname": "root",
	})
	os.WriteFile(filepath.Join(src, markerPath), []byte("from the usr partition"), 0o644)
	return []gpttest.Part{{Type: "root", CopyBlocks: erofsOf(t, decoy, dir, "")}, {Type: "usr", CopyBlocks: erofsOf(t, filepath.Join(src, "usr"), dir, "")}}
}

// sysextVersion is the major version of the systemd-sysext binary.
func sysextVersion(t *testing.T, sysext string) int {
	out, err := exec.Command(sysext, "--version").Output()
	m := regexp.MustCompile(`^systemd (\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-sysext --version: %v\n%s", err, out)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// verdict is one side's judgement of an image.
type verdict struct {
	merged bool
	marker string
	why    string
}

// systemdVerdict runs `systemd-sysext --root=root merge` in a private mount namespace (whose
// mounts are made shared among themselves so that sysext's child namespace can hand its
// overlay back, and with a tmpfs on /run, which sysext needs as a mount point), and reads the
// merged tree before the namespace ends. Nothing propagates to the host's mounts.
func systemdVerdict(t *testing.T, sysext, root string) verdict {
	script := `mount --make-rshared / && mount -t tmpfs kfw-test /run || exit 99
"$SYSEXT" --root="$ROOT" merge 2>&1; echo "KFW-EXIT=$?"
echo "KFW-EXTENSIONS=$(cat "$ROOT/usr/.systemd-sysext/extensions" 2>/dev/null | tr '\n' ' ')"
echo "KFW-MARKER=$(cat "$ROOT/` + markerPath + `" 2>/dev/null)"`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "SYSEXT="+sysext, "ROOT="+root, "SYSTEMD_LOG_LEVEL=info", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unshare: %v\n%s", err, out)
	}
	get := func(key string) string {
		m := regexp.MustCompile(`(?m)^` + key + `=(.*)$`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no %s in:\n%s", key, out)
		}
		return strings.TrimSpace(string(m[1]))
	}
	v := verdict{merged: get("KFW-EXTENSIONS") != "", marker: get("KFW-MARKER")}
	v.why = strings.TrimSpace(string(out[:bytes.Index(out, []byte("KFW-EXIT="))]))
	if v.why == "" {
		v.why = "exit " + get("KFW-EXIT")
	}
	return v
}

// ourVerdict is manifests.Read and sysextcheck.Check, as the plan stage uses them.
func ourVerdict(t *testing.T, rules sysextcheck.Rules, image string, host map[string]string) verdict {
	img, err := manifests.Read(image)
	if err != nil {
		return verdict{why: err.Error()}
	}
	if err := rules.Check(img.Release, host, sysextcheck.ScopeSystem, sysextcheck.HostArch()); err != nil {
		return verdict{why: err.Error()}
	}
	fsys, _, closer, err := manifests.Open(image)
	if err != nil {
		t.Fatalf("%s: Read succeeded but Open failed: %v", image, err)
	}
	defer closer.Close()
	marker, _ := fsys.(*manifests.ImageFS).ReadFile(markerPath)
	return verdict{merged: true, marker: string(marker), why: fmt.Sprintf("merged (%s %s %s)", img.Format, img.Inner, img.Partition)}
}

func TestSysextDifferential(t *testing.T) {
	if os.Geteuid() != 0 {
		testkernel.Missing(t, "the differential test runs systemd-sysext merge, which needs root")
	}
	sysext := testkernel.Tool(t, "systemd-sysext")
	testkernel.Tool(t, "unshare")
	testkernel.Tool(t, "systemd-repart")
	imagetest.Tool(t, "mkfs.erofs", "erofs-utils")
	imagetest.Tool(t, "mksquashfs", "squashfs-tools")
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		testkernel.Missing(t, "unshare -m does not work here: %v %s", err, out)
	}
	if gpt.HostArch() != "x86-64" {
		t.Skipf("the cases are written for an x86-64 host, this one is %q", gpt.HostArch())
	}
	version := sysextVersion(t, sysext)
	rules := sysextcheck.Systemd252
	if version >= 258 {
		rules = sysextcheck.Systemd258
	}
	t.Logf("systemd-sysext %d", version)

	roots := map[string]string{}
	for name, osRelease := range diffHosts {
		root := t.TempDir()
		imagetest.WriteTree(t, root, map[string]string{"usr/lib/os-release": osRelease, "etc/os-release": "->../usr/lib/os-release", "usr/bin/true": "host"})
		if err := os.MkdirAll(filepath.Join(root, "var/lib/extensions"), 0o755); err != nil {
			t.Fatal(err)
		}
		roots[name] = root
	}

	images, merged, refused := 0, 0, 0
	for _, c := range diffCases() {
		for _, format := range c.formats {
			name := c.name + "-" + format
			t.Run(name, func(t *testing.T) {
				host := c.host
				if host == "" {
					host = "debian"
				}
				root := roots[host]
				store := filepath.Join(root, "var/lib/extensions")
				image := buildDiffImage(t, c, format, store)
				defer os.RemoveAll(image)
				images++
				hostRelease, err := manifests.ParseRelease([]byte(diffHosts[host]))
				if err != nil {
					t.Fatal(err)
				}
				ours := ourVerdict(t, rules, image, hostRelease)
				theirs := systemdVerdict(t, sysext, root)
				if ours.merged != c.merged {
					t.Errorf("we say merged=%v (%s), the case expects %v", ours.merged, ours.why, c.merged)
				}
				wantTheirs := ours.merged
				if c.agreeFrom != 0 && version < c.agreeFrom {
					wantTheirs = !ours.merged
					t.Logf("documented difference with systemd %d: %s", version, c.differs)
				}
				if theirs.merged != wantTheirs {
					t.Errorf("systemd-sysext %d: merged=%v, we: merged=%v\nsystemd: %s\nwe: %s", version, theirs.merged, ours.merged, theirs.why, ours.why)
				}
				if ours.merged && theirs.merged && ours.marker != theirs.marker {
					t.Errorf("merged content differs: systemd merged marker %q, we read %q", theirs.marker, ours.marker)
				}
				if wantMarker := markerFor(c); ours.merged && ours.marker != wantMarker {
					t.Errorf("we read marker %q, the case expects %q", ours.marker, wantMarker)
				}
				if theirs.merged {
					merged++
				} else {
					refused++
				}
				t.Logf("merged=%v; we: %s", ours.merged, ours.why)
			})
		}
	}
	if images < 40 || merged < 10 || refused < 10 {
		t.Errorf("%d images (%d merged, %d refused by systemd): want at least 40 images with at least 10 of each", images, merged, refused)
	}
}

func markerFor(c diffCase) string {
	if c.marker != "" {
		return c.marker
	}
	return c.name
}

// buildDiffImage writes the case's image in format into the store and returns its path.
func buildDiffImage(t *testing.T, c diffCase, format, store string) string {
	file := c.file
	if file == "" {
		file = c.name + ".raw"
	}
	if format == "directory" {
		file = strings.TrimSuffix(file, ".raw")
	}
	imageName := strings.TrimSuffix(strings.TrimSuffix(file, ".raw"), ".sysext")
	releaseFor := c.releaseFor
	if releaseFor == "" {
		releaseFor = imageName
	}
	files := map[string]string{markerPath: markerFor(c), "usr/lib/firmware/kfw-test/" + c.name + ".bin": "firmware"}
	if c.release != "-" {
		files["usr/lib/extension-release.d/extension-release."+releaseFor] = c.release
	}
	for k, v := range c.files {
		files[k] = v
	}
	src := t.TempDir()
	imagetest.WriteTree(t, src, files)
	dst := filepath.Join(store, file)
	switch format {
	case "directory":
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	case "squashfs":
		imagetest.Squashfs(t, dst, src, "gzip")
	case "erofs":
		imagetest.Erofs(t, dst, src)
	case "gpt":
		dir := t.TempDir()
		parts := []gpttest.Part{
			{Type: "root", CopyBlocks: erofsOf(t, src, dir, ""), Verity: "data", VerityMatchKey: "root"},
			{Type: "root-verity", Verity: "hash", VerityMatchKey: "root"},
		}
		if c.ddi != nil {
			parts = c.ddi(t, src, dir)
		}
		gpttest.Repart(t, dst, parts)
	default:
		t.Fatalf("format %q", format)
	}
	return dst
}
