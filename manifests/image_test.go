package manifests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

const releaseText = "ID=_any\nARCHITECTURE=x86-64\n# built by a test\nVERSION_ID=\"1.0\"\n"

// fwTree is the fixture of an image named fw: nested directories, a compressed file, relative
// and absolute symlinks, a link to a directory, and broken links.
func fwTree(t testing.TB) string {
	root := t.TempDir()
	imagetest.WriteTree(t, root, map[string]string{
		"usr/lib/extension-release.d/extension-release.fw": releaseText,
		"usr/lib/firmware/rtw88/rtw8821a_fw.bin":           strings.Repeat("R", 5000),
		"usr/lib/firmware/vendor/nested/deep.bin":          "deep",
		"usr/lib/firmware/amd/ucode.bin.zst":               "zstd-bytes",
		"usr/lib/firmware/amd/ucode.bin.xz":                "xz-bytes",
		"usr/lib/firmware/link.bin":                        "->rtw88/rtw8821a_fw.bin",
		"usr/lib/firmware/abs.bin":                         "->/usr/lib/firmware/vendor/nested/deep.bin",
		"usr/lib/firmware/linkdir":                         "->vendor/nested",
		"usr/lib/firmware/dangling.bin":                    "->missing.bin",
		"usr/lib/firmware/escape.bin":                      "->../../../../etc/passwd",
		"usr/lib/firmware/loop.bin":                        "->loop.bin",
		"usr/share/doc/fw/README":                          "not firmware",
	})
	return root
}

var wantFirmware = []FirmwareFile{
	{Name: "abs.bin", Path: "usr/lib/firmware/vendor/nested/deep.bin", Link: "/usr/lib/firmware/vendor/nested/deep.bin", Size: 4},
	{Name: "amd/ucode.bin", Path: "usr/lib/firmware/amd/ucode.bin.zst", Compression: "zstd", Size: 10},
	{Name: "amd/ucode.bin", Path: "usr/lib/firmware/amd/ucode.bin.xz", Compression: "xz", Size: 8},
	{Name: "link.bin", Path: "usr/lib/firmware/rtw88/rtw8821a_fw.bin", Link: "rtw88/rtw8821a_fw.bin", Size: 5000},
	{Name: "linkdir/deep.bin", Path: "usr/lib/firmware/vendor/nested/deep.bin", Size: 4},
	{Name: "rtw88/rtw8821a_fw.bin", Path: "usr/lib/firmware/rtw88/rtw8821a_fw.bin", Size: 5000},
	{Name: "vendor/nested/deep.bin", Path: "usr/lib/firmware/vendor/nested/deep.bin", Size: 4},
}

var wantProblems = []string{
	"usr/lib/firmware/dangling.bin: symlink to \"missing.bin\": target missing in the image",
	"usr/lib/firmware/escape.bin: symlink to \"../../../../etc/passwd\": leaves the image",
	"usr/lib/firmware/loop.bin: symlink to \"loop.bin\": symlink loop",
}

func checkProblems(t *testing.T, got []Problem) {
	t.Helper()
	if len(got) != len(wantProblems) {
		t.Errorf("Problems = %+v, want %d", got, len(wantProblems))
		return
	}
	for i, p := range got {
		if s := p.Path + ": " + p.Reason; !strings.HasPrefix(s, wantProblems[i]) {
			t.Errorf("Problems[%d] = %q, want prefix %q", i, s, wantProblems[i])
		}
	}
}

// buildAll makes the tree at src into every image format this machine can build, named
// <name>-<variant>.raw in dir (plus the directory itself), and returns the paths.
func buildAll(t *testing.T, src, dir, name string) map[string]Format {
	out := map[string]Format{}
	d := filepath.Join(dir, name+"-directory")
	if err := os.Symlink(src, d); err != nil {
		t.Fatal(err)
	}
	out[d] = FormatDirectory
	if imagetestHas("mkfs.erofs") {
		p := filepath.Join(dir, name+"-erofs.raw")
		imagetest.Erofs(t, p, src)
		out[p] = FormatErofs
		for _, alg := range imagetest.ErofsCompressors(t) {
			p := filepath.Join(dir, name+"-erofs-"+alg+".raw")
			imagetest.Erofs(t, p, src, "-z"+alg)
			out[p] = FormatErofs
		}
	}
	if imagetestHas("mksquashfs") {
		for _, alg := range imagetest.SquashfsCompressors(t) {
			p := filepath.Join(dir, name+"-squashfs-"+alg+".raw")
			imagetest.Squashfs(t, p, src, alg)
			out[p] = FormatSquashfs
		}
	}
	return out
}

// storeLink gives an image the store name of an image called name, as a symlink.
func storeLink(t *testing.T, path string, format Format, name string) string {
	link := filepath.Join(t.TempDir(), name+".sysext.raw")
	if format == FormatDirectory {
		link = filepath.Join(filepath.Dir(link), name+".sysext")
	}
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	return link
}

func imagetestHas(tool string) bool {
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, tool)); err == nil {
			return true
		}
	}
	return false
}

func TestReadFormats(t *testing.T) {
	src := fwTree(t)
	dir := t.TempDir()
	images := buildAll(t, src, dir, "fw")
	if len(images) < 3 {
		t.Logf("only %d image formats could be built here", len(images))
	}
	for path, format := range images {
		t.Run(filepath.Base(path), func(t *testing.T) {
			link := storeLink(t, path, format, "fw")
			img, err := Read(link)
			if err != nil {
				t.Fatal(err)
			}
			if img.Name != "fw" || img.Format != format || img.Target == "" || img.FromManifest {
				t.Errorf("Name %q Format %q Target %q FromManifest %v; want fw, %s, the link target, false", img.Name, img.Format, img.Target, img.FromManifest, format)
			}
			wantRel := map[string]string{"ID": "_any", "ARCHITECTURE": "x86-64", "VERSION_ID": "1.0"}
			if !reflect.DeepEqual(img.Release, wantRel) || img.ReleasePath != ReleaseDir+"/extension-release.fw" {
				t.Errorf("Release %q from %s, want %q", img.Release, img.ReleasePath, wantRel)
			}
			if !reflect.DeepEqual(img.Firmware, wantFirmware) {
				t.Errorf("Firmware:\n%s\nwant:\n%s", dump(img.Firmware), dump(wantFirmware))
			}
			checkProblems(t, img.Problems)
			// the FS resolves symlinks inside the image
			fsys, _, closer, err := Open(link)
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			data, err := fsys.(*ImageFS).ReadFile("usr/lib/firmware/linkdir/deep.bin")
			if err != nil || string(data) != "deep" {
				t.Errorf("ReadFile through a directory link = %q, %v", data, err)
			}
			if _, err := fsys.(*ImageFS).ReadFile("usr/lib/firmware/escape.bin"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("ReadFile of a link above the root = %v, want not-exist inside the image", err)
			}
		})
	}
}

func dump(files []FirmwareFile) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "  %+v\n", f)
	}
	return b.String()
}

func TestReadManifest(t *testing.T) {
	src := t.TempDir()
	imagetest.WriteTree(t, src, map[string]string{
		"usr/lib/extension-release.d/extension-release.fw": releaseText,
		"usr/lib/firmware/rtw88/rtw8821a_fw.bin":           "x",
		"usr/lib/kairos-firmware/manifest.fw.json": `{"version":1,"name":"fw",
			"firmware":[{"path":"rtw88/rtw8821a_fw.bin.zst","sha256":"` + sum + `","size":12}],
			"modules":[{"name":"rtw88_8821au","aliases":["usb:v2357p011Ed*dc*dsc*dp*ic*isc*ip*in*"]}]}`,
	})
	for path, format := range buildAll(t, src, t.TempDir(), "fw") {
		img, err := Read(storeLink(t, path, format, "fw"))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want := []FirmwareFile{{Name: "rtw88/rtw8821a_fw.bin", Path: "usr/lib/firmware/rtw88/rtw8821a_fw.bin.zst", Compression: "zstd", Size: 12, SHA256: sum}}
		if !img.FromManifest || !reflect.DeepEqual(img.Firmware, want) || len(img.Modules) != 1 || img.Modules[0].Name != "rtw88_8821au" {
			t.Errorf("%s: FromManifest %v Firmware %+v Modules %+v", path, img.FromManifest, img.Firmware, img.Modules)
		}
	}
	// a bad manifest rejects the image with the file, the field and both values
	imagetest.WriteTree(t, src, map[string]string{"usr/lib/kairos-firmware/manifest.other.json": ""})
	os.WriteFile(filepath.Join(src, "usr/lib/kairos-firmware/manifest.fw.json"), []byte(`{"version":1,"name":"nope"}`), 0o644)
	link := filepath.Join(t.TempDir(), "fw")
	os.Symlink(src, link)
	_, err := Read(link)
	if err == nil || !strings.Contains(err.Error(), `manifest usr/lib/kairos-firmware/manifest.fw.json: field name is "nope", the image is "fw"`) {
		t.Errorf("Read with a bad manifest: %v", err)
	}
}

func TestReadRejects(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"updates", map[string]string{"usr/lib/firmware/updates/x.bin": "x"}, "usr/lib/firmware/updates exists"},
		{"firmware symlink", map[string]string{"usr/lib/firmware": "->/opt/fw"}, "usr/lib/firmware is a symlink, not a directory"},
		{"os-release", map[string]string{"usr/lib/os-release": "ID=x"}, "contains usr/lib/os-release"},
		{"no release", map[string]string{"usr/lib/extension-release.d/extension-release.other": "ID=_any"}, "no extension-release"},
		{"no release dir", map[string]string{"usr/lib/firmware/a.bin": "a"}, "no extension-release: usr/lib/extension-release.d/extension-release.fw is missing"},
	}
	for _, tc := range cases {
		src := t.TempDir()
		files := map[string]string{"usr/lib/extension-release.d/extension-release.fw": releaseText}
		if tc.name == "no release" || tc.name == "no release dir" {
			files = map[string]string{}
		}
		for k, v := range tc.files {
			files[k] = v
		}
		imagetest.WriteTree(t, src, files)
		link := filepath.Join(t.TempDir(), "fw")
		os.Symlink(src, link)
		_, err := Read(link)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Read = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestReleaseFallback(t *testing.T) {
	// a versioned image name falls back to the release file named after its base name
	src := t.TempDir()
	imagetest.WriteTree(t, src, map[string]string{"usr/lib/extension-release.d/extension-release.fw": releaseText})
	link := filepath.Join(t.TempDir(), "fw_2.1")
	os.Symlink(src, link)
	img, err := Read(link)
	if err != nil || img.Name != "fw_2.1" || img.ReleasePath != ReleaseDir+"/extension-release.fw" {
		t.Fatalf("Read(fw_2.1) = %+v, %v", img, err)
	}

	// a renamed image: only the strict=0 xattr makes the release file acceptable
	src = t.TempDir()
	imagetest.WriteTree(t, src, map[string]string{"usr/lib/extension-release.d/extension-release.original": releaseText})
	rel := filepath.Join(src, ReleaseDir, "extension-release.original")
	link = filepath.Join(t.TempDir(), "renamed")
	os.Symlink(src, link)
	if _, err := Read(link); err == nil {
		t.Fatalf("a renamed image without the xattr was accepted")
	}
	if err := unix.Setxattr(rel, strictXattr, []byte("false"), 0); err != nil {
		t.Skipf("user xattrs unsupported here: %v", err)
	}
	img, err = Read(link)
	if err != nil || img.ReleasePath != ReleaseDir+"/extension-release.original" {
		t.Fatalf("renamed directory image with %s=false: %+v, %v", strictXattr, img, err)
	}
	// the same through an erofs image, which keeps the xattr
	if imagetestHas("mkfs.erofs") {
		p := filepath.Join(t.TempDir(), "renamed.raw")
		imagetest.Erofs(t, p, src)
		img, err = Read(p)
		if err != nil || img.ReleasePath != ReleaseDir+"/extension-release.original" {
			t.Fatalf("renamed erofs image with %s=false: %+v, %v", strictXattr, img, err)
		}
	}
	// two candidates are ambiguous
	imagetest.WriteTree(t, src, map[string]string{"usr/lib/extension-release.d/extension-release.second": releaseText})
	unix.Setxattr(filepath.Join(src, ReleaseDir, "extension-release.second"), strictXattr, []byte("0"), 0)
	if _, err := Read(link); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("two fallback candidates: %v, want ambiguous", err)
	}
	// strict=1 is not a candidate
	unix.Setxattr(filepath.Join(src, ReleaseDir, "extension-release.second"), strictXattr, []byte("1"), 0)
	if img, err := Read(link); err != nil || img.ReleasePath != ReleaseDir+"/extension-release.original" {
		t.Errorf("strict=1 candidate ignored: %+v, %v", img, err)
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int, patch map[int]string) string {
		b := make([]byte, size)
		for off, s := range patch {
			copy(b[off:], s)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	gpt := write("gpt.raw", 8192, map[int]string{510: "\x55\xaa", 512: "EFI PART"})
	if f, err := Detect(gpt); f != FormatGPT || err != nil {
		t.Errorf("Detect(gpt) = %q, %v", f, err)
	}
	if _, _, _, err := Open(gpt); err == nil || !strings.Contains(err.Error(), "image size is 8192 bytes") {
		t.Errorf("Open(gpt) = %v, want the GPT reader's refusal", err)
	}
	if f, err := Detect(write("sq.raw", 100, map[int]string{0: "hsqs"})); f != FormatSquashfs || err != nil {
		t.Errorf("Detect(squashfs magic) = %q, %v", f, err)
	}
	if f, err := Detect(write("e.raw", 2048, map[int]string{1024: "\xe2\xe1\xf5\xe0"})); f != FormatErofs || err != nil {
		t.Errorf("Detect(erofs magic) = %q, %v", f, err)
	}
	_, err := Detect(write("ext4.raw", 2048, map[int]string{1080: "\x53\xef"}))
	if err == nil || !strings.Contains(err.Error(), "ext4") {
		t.Errorf("Detect(ext4) = %v", err)
	}
	junk := write("junk.raw", 32, map[int]string{0: "JUNKDATA"})
	_, err = Detect(junk)
	if err == nil || !strings.Contains(err.Error(), junk) || !strings.Contains(err.Error(), "4a 55 4e 4b 44 41 54 41") {
		t.Errorf("Detect(junk) = %v, want the path and the first bytes", err)
	}
	if f, err := Detect(dir); f != FormatDirectory || err != nil {
		t.Errorf("Detect(dir) = %q, %v", f, err)
	}
}

// TestSquashfsLZ4 reads lz4 squashfs images, plain and -Xhc: squashfs stores raw LZ4 blocks,
// which github.com/CalebQ42/squashfs (used before package squashfs) misread as LZ4 frames.
func TestSquashfsLZ4(t *testing.T) {
	tool := imagetest.Tool(t, "mksquashfs", "squashfs-tools")
	src := fwTree(t)
	for _, opts := range [][]string{nil, {"-Xhc"}} {
		p := filepath.Join(t.TempDir(), "fw.raw")
		args := append([]string{src, p, "-noappend", "-quiet", "-no-progress", "-all-root", "-comp", "lz4"}, opts...)
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
		}
		img, err := Read(p)
		if err != nil {
			t.Errorf("Read(lz4 squashfs %v) = %v", opts, err)
			continue
		}
		if img.Name != "fw" || img.Format != FormatSquashfs || !reflect.DeepEqual(img.Firmware, wantFirmware) {
			t.Errorf("lz4 %v: Name %q Format %q Firmware:\n%s\nwant:\n%s", opts, img.Name, img.Format, dump(img.Firmware), dump(wantFirmware))
		}
		checkProblems(t, img.Problems)
	}
}

// TestFirmwareWalkIsBounded: a tree that lists one directory under two names at every level
// (symlinks here; hard-linked directories in a crafted erofs or squashfs image) grows
// exponentially with depth. The walk stops at maxFirmwareEntries with an error.
func TestFirmwareWalkIsBounded(t *testing.T) {
	defer func(n int) { maxFirmwareEntries = n }(maxFirmwareEntries)
	maxFirmwareEntries = 1000
	dir := t.TempDir()
	fw := filepath.Join(dir, "usr/lib/firmware")
	const depth = 12 // 2^12 paths to the last level
	for i := 0; i <= depth; i++ {
		if err := os.MkdirAll(filepath.Join(fw, fmt.Sprint("l", i)), 0o755); err != nil {
			t.Fatal(err)
		}
		if i < depth {
			for _, name := range []string{"a", "b"} {
				if err := os.Symlink(fmt.Sprint("../l", i+1), filepath.Join(fw, fmt.Sprint("l", i), name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	writeTestFile(t, filepath.Join(fw, fmt.Sprint("l", depth), "f.bin"), "firmware")
	writeTestFile(t, filepath.Join(dir, "usr/lib/extension-release.d/extension-release."+filepath.Base(dir)), "ID=_any\n")
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "more than 1000 entries under usr/lib/firmware:") {
		t.Fatalf("Read: %v", err)
	}
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
