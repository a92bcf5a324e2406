package split

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
	"github.com/kairos-io/kairos-firmware/manifests/verity"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// needTools skips (or fails under CI) when a format's programs are missing.
func needTools(t *testing.T, f Format) {
	t.Helper()
	for _, tool := range f.tools() {
		imagetest.Tool(t, tool[0], tool[1])
	}
}

// checkImage reads a written image back as plan does and checks it against the catalog: name,
// extension-release, manifest, and every firmware file's bytes through the image's own links.
func checkImage(t *testing.T, out string, ci CatalogImage) *manifests.Image {
	t.Helper()
	p := filepath.Join(out, ci.File)
	img, err := manifests.Read(p)
	if err != nil {
		t.Fatalf("%s: %v", ci.File, err)
	}
	if img.Name != ci.Name || !img.FromManifest || len(img.Firmware) != ci.Firmware {
		t.Errorf("%s: name %q, from manifest %v, %d firmware (catalog: %d)", ci.File, img.Name, img.FromManifest, len(img.Firmware), ci.Firmware)
	}
	want := map[string]string{"ID": "_any", "ARCHITECTURE": "x86-64", "SYSEXT_SCOPE": "initrd system"}
	if !reflect.DeepEqual(img.Release, want) {
		t.Errorf("%s: extension-release %v", ci.File, img.Release)
	}
	if ci.Format != FormatDirectory {
		sum, size, err := fileDigest(p)
		if err != nil || sum != ci.SHA256 || size != ci.Size {
			t.Errorf("%s: sha256 %s size %d, catalog says %s %d (%v)", ci.File, sum, size, ci.SHA256, ci.Size, err)
		}
	}
	fsys, _, closer, err := manifests.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	for _, f := range img.Firmware {
		data, err := fs.ReadFile(fsys, f.Path)
		sum := sha256.Sum256(data)
		if err != nil || hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(data)) != f.Size {
			t.Errorf("%s: %s reads %d bytes (%v), the manifest says %d bytes, sha256 %s", ci.File, f.Path, len(data), err, f.Size, f.SHA256)
		}
	}
	return img
}

// firmwareNames lists an image's firmware: name, compression, size.
func firmwareNames(img *manifests.Image) []string {
	var out []string
	for _, f := range img.Firmware {
		out = append(out, fmt.Sprintf("%s %s %d", f.Name, f.Compression, f.Size))
	}
	return out
}

func TestSplitWritesWhatPlanReads(t *testing.T) {
	fw := firmwareTree(t, testTree)
	kernel := fakeKernel(t, testDecl)
	for _, format := range []Format{FormatDirectory, FormatErofs, FormatSquashfs} {
		t.Run(string(format), func(t *testing.T) {
			needTools(t, format)
			opts := options(t, fw, kernel, format)
			c, err := Split(opts)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, ci := range c.Images {
				names = append(names, ci.File)
				img := checkImage(t, opts.Out, ci)
				if ci.Name == "firmware-beta+gamma" {
					// The manifest lists each module with its aliases and declared firmware.
					if len(img.Modules) != 2 || img.Modules[0].Name != "beta" || !reflect.DeepEqual(img.Modules[0].Aliases, []string{"pci:v0000betad*"}) ||
						!reflect.DeepEqual(img.Modules[1].Firmware, []string{"common/shared.bin", "gamma/g.bin"}) {
						t.Errorf("modules of firmware-beta+gamma: %+v", img.Modules)
					}
				}
				if format != FormatDirectory {
					continue
				}
				// Without the manifest, the tree walk must find the same firmware and no
				// problem: every link resolves inside the image.
				if err := os.Remove(filepath.Join(opts.Out, ci.File, manifests.ManifestPath(ci.Name))); err != nil {
					t.Fatal(err)
				}
				walked, err := manifests.Read(filepath.Join(opts.Out, ci.File))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(firmwareNames(walked), firmwareNames(img)) || len(walked.Problems) > 0 {
					t.Errorf("%s: the tree offers %v (problems %v), the manifest said %v", ci.Name, firmwareNames(walked), walked.Problems, firmwareNames(img))
				}
			}
			ext := ".raw"
			if format == FormatDirectory {
				ext = ""
			}
			want := []string{}
			for _, n := range []string{"firmware-alpha", "firmware-beta", "firmware-beta+gamma", "firmware-brcmfmac", "firmware-gamma", "firmware-nouveau", "linux-firmware-other"} {
				want = append(want, n+ext)
			}
			assertEqual(t, "images", names, want)
			if !reflect.DeepEqual(c.Warnings[:1], []string{"module ghost left out: reading its declared firmware: no such file or directory"}) {
				t.Errorf("warnings %q", c.Warnings)
			}
			onDisk, err := ReadCatalog(opts.Out)
			if err != nil || !reflect.DeepEqual(onDisk, c) {
				t.Errorf("catalog.json differs from the returned catalog (%v)", err)
			}
			entries, _ := os.ReadDir(opts.Out)
			if len(entries) != len(c.Images)+1 {
				t.Errorf("--out holds %d entries, want the %d images and catalog.json", len(entries), len(c.Images))
			}
		})
	}
}

// TestSplitIsReproducible splits the same content, written in another order, with one job and
// with four, the second under umask 077, into two directories: every file must be
// byte-identical.
func TestSplitIsReproducible(t *testing.T) {
	kernel := fakeKernel(t, testDecl)
	for _, format := range []Format{FormatErofs, FormatSquashfs, FormatDDI} {
		t.Run(string(format), func(t *testing.T) {
			needTools(t, format)
			if format == FormatDDI && gpt.HostArch() != "x86-64" {
				t.Skip("x86-64 partition types")
			}
			var outs []string
			for _, jobs := range []int{1, 4} {
				opts := options(t, firmwareTree(t, testTree), kernel, format) // map order: another creation order
				opts.Jobs = jobs
				if jobs == 4 {
					old := syscall.Umask(0o077) // modes must not follow the umask
					_, err := Split(opts)
					syscall.Umask(old)
					if err != nil {
						t.Fatal(err)
					}
				} else if _, err := Split(opts); err != nil {
					t.Fatal(err)
				}
				outs = append(outs, opts.Out)
			}
			a, b := listing(t, outs[0]), listing(t, outs[1])
			if len(a) < 8 || !reflect.DeepEqual(a, b) {
				t.Fatalf("the two splits differ:\n%v\n%v", a, b)
			}
		})
	}
}

// listing maps each file of dir to its bytes' digest.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		sum, _, err := fileDigest(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sum
	}
	return out
}

// TestSplitDDI: DDIs are what AuroraBoot makes and systemd-sysext mounts: an erofs root of the
// architecture with dm-verity and, with a key, a signature the certificate verifies.
func TestSplitDDI(t *testing.T) {
	needTools(t, FormatDDI)
	if gpt.HostArch() != "x86-64" {
		t.Skip("x86-64 partition types")
	}
	fw := firmwareTree(t, map[string]string{"beta/b.bin": strings.Repeat("b", 5000), "common/shared.bin": "s", "WHENCE": "w"})
	kernel := fakeKernel(t, testDecl)
	key, cert := gpttest.KeyPair(t)
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	x509cert, err := verity.ParseCertificate(pem)
	if err != nil {
		t.Fatal(err)
	}
	trust := verity.NewTrustStore(x509cert)
	host := &hostfs.Root{Dir: "/", FS: vfs.OSFS}
	for _, signed := range []bool{false, true} {
		opts := options(t, fw, kernel, FormatDDI)
		if signed {
			opts.SignKey, opts.SignCert = key, cert
		}
		c, err := Split(opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, ci := range c.Images {
			img := checkImage(t, opts.Out, ci)
			if img.Format != manifests.FormatGPT || img.Inner != manifests.FormatErofs || img.Partition != "root-x86-64" {
				t.Errorf("%s: format %s, inner %s, partition %s", ci.File, img.Format, img.Inner, img.Partition)
			}
			abs, _ := filepath.Abs(filepath.Join(opts.Out, ci.File))
			img.Path = abs
			err := manifests.Admit(host, img, verity.PolicyRequired, true, trust)
			if signed != (err == nil) {
				t.Errorf("%s (signed %v): signatures: required says %v", ci.File, signed, err)
			}
			if err := manifests.Admit(host, img, verity.PolicyAuto, false, trust); err != nil {
				t.Errorf("%s: the verity check fails: %v", ci.File, err)
			}
			dissect(t, filepath.Join(opts.Out, ci.File), signed)
		}
	}
}

// dissect asks systemd-dissect what it finds in a DDI: a root partition with
// verity, and its signature when signed.
func dissect(t *testing.T, raw string, signed bool) {
	t.Helper()
	tool, err := exec.LookPath("systemd-dissect")
	if err != nil {
		testkernel.Missing(t, "systemd-dissect is not installed (make deps installs systemd-container)")
	}
	if err != nil {
		return // skipped above (outside CI)
	}
	out, err := exec.Command(tool, "--json=short", "--no-pager", raw).Output()
	if err != nil {
		t.Fatalf("systemd-dissect %s: %v\n%s", raw, err, out)
	}
	var d struct {
		Mounts []struct {
			Designator string `json:"designator"`
			FSType     string `json:"fstype"`
			Verity     string `json:"verity"`
			Signed     bool   `json:"signed"`
			Arch       string `json:"architecture"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("systemd-dissect's JSON: %v\n%s", err, out)
	}
	for _, m := range d.Mounts {
		if m.Designator == "root" {
			if m.FSType != "erofs" || m.Arch != "x86-64" || m.Verity == "" || (signed && m.Verity != "signed") {
				t.Errorf("systemd-dissect %s: root %+v\n%s", raw, m, out)
			}
			return
		}
	}
	t.Errorf("systemd-dissect %s finds no root partition:\n%s", raw, out)
}

// TestSplitRefusesAndCleansUp: bad options are all reported before anything is written, and a
// build that fails removes what it wrote.
func TestSplitRefusesAndCleansUp(t *testing.T) {
	fw := firmwareTree(t, testTree)
	kernel := fakeKernel(t, testDecl)
	opts := options(t, fw, kernel, FormatDDI)
	opts.Release = Release{ID: "Debian", Architecture: "_any", VersionID: "12 bookworm"}
	opts.SignKey = "key.pem"
	if err := os.MkdirAll(filepath.Join(opts.Out, "old.raw"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Split(opts)
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("want Problems, got %v", err)
	}
	for _, want := range []string{`--out "` + opts.Out + `" is not empty (it holds old.raw)`, `--id "Debian"`, `--version "12 bookworm"`,
		"--arch _any: a DDI's root partition type names one architecture", "--sign-key and --sign-cert go together"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q: %v", want, err)
		}
	}

	opts = options(t, fw, kernel, FormatErofs)
	opts.Out = filepath.Join(fw, "out")
	if _, err := Split(opts); err == nil || !strings.Contains(err.Error(), "is inside --firmware") {
		t.Errorf("--out inside --firmware: %v", err)
	}

	// A mkfs.erofs that fails: nothing is left, not even --out, which split made.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "mkfs.erofs"), []byte("#!/bin/sh\necho disk full >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	opts = options(t, fw, kernel, FormatErofs)
	if _, err := Split(opts); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("a failing mkfs.erofs: %v", err)
	}
	if _, err := os.Stat(opts.Out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("--out is left after a failure: %v", err)
	}
}

// TestModulesDirReadsTheDebianKernel: --modules DIR shows kmod the directory as a kernel.
func TestModulesDirReadsTheDebianKernel(t *testing.T) {
	dir := testkernel.ModulesDir(t)
	fw := firmwareTree(t, map[string]string{"bnx2/bnx2-mips-09-6.2.1b.fw": "x", "brcm/brcmfmac4356-sdio.bin": "y"})
	a, _ := planOf(t, fw, dir)
	assertEqual(t, "images", contents(a), map[string][]string{
		"firmware-bnx2": {"bnx2/bnx2-mips-09-6.2.1b.fw"}, "firmware-brcmfmac": {"brcm/brcmfmac4356-sdio.bin"}})
	// Loadable modules' aliases come from modules.alias: bnx2 has 11 there.
	if aliases := a.modules["bnx2"].aliases; len(aliases) != 11 || aliases[1] != "pci:v000014E4d0000163Asv*sd*bc*sc*i*" {
		t.Errorf("bnx2's aliases: %v", aliases)
	}
}
