package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/builder/split"
	"github.com/kairos-io/kairos-firmware/hwmatch/kmod"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/stages/plan"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// debianDeclared lists, per module of the Debian kernel that declares firmware, its declared
// names: modules from modules.dep and modules.builtin (not modules.builtin.modinfo, which split
// reads), firmware from kmod, which TestDetectOnRecordedMachines checks against modinfo.
func debianDeclared(t testing.TB) map[string][]string {
	t.Helper()
	dir := testkernel.Dir(t)
	k, err := kmod.Open(vfs.NewPathFS(vfs.OSFS, dir), testkernel.Release)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var names []string
	for _, list := range []string{"modules.dep", "modules.builtin"} {
		data, err := os.ReadFile(filepath.Join(testkernel.ModulesDir(t), list))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			file, _, _ := strings.Cut(line, ":")
			if base := filepath.Base(file); strings.Contains(base, ".ko") {
				names = append(names, strings.ReplaceAll(base[:strings.Index(base, ".ko")], "-", "_"))
			}
		}
	}
	declared := map[string][]string{}
	for _, m := range names {
		fw, err := k.Firmware(m)
		if err != nil {
			t.Fatalf("module %s: %v", m, err)
		}
		if len(fw) > 0 {
			declared[m] = fw
		}
	}
	return declared
}

// concreteName turns a declared wildcard name into one file name it matches: '*' and '?' become
// "x", a bracket expression its first character.
func concreteName(pattern string) string {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*', '?':
			b.WriteByte('x')
		case '[':
			end := strings.IndexByte(pattern[i+1:], ']')
			b.WriteByte(strings.TrimLeft(pattern[i+1:i+1+end], "!^")[0])
			i += end + 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// syntheticFirmware writes a firmware tree holding every name the Debian kernel's modules
// declare (a wildcard name as one concrete file), each a few bytes of its own name, and returns
// it with the declared names.
func syntheticFirmware(t testing.TB) (string, map[string][]string) {
	t.Helper()
	declared := debianDeclared(t)
	dir := t.TempDir()
	written := map[string]bool{}
	for _, fw := range declared {
		for _, name := range fw {
			name = concreteName(name)
			if written[name] {
				continue
			}
			written[name] = true
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(name+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, declared
}

// cli runs the binary expecting exit 0 and decodes its JSON into v (runJSON for benchmarks too).
func cli(tb testing.TB, v any, args ...string) {
	tb.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("kairos-firmware %v: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		tb.Fatalf("kairos-firmware %v: output is not JSON: %v\n%s", args, err, stdout.String())
	}
}

// splitDebian splits the synthetic tree of the Debian kernel's firmware into erofs images.
func splitDebian(tb testing.TB, fw string) (string, *split.Catalog) {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "images")
	var c split.Catalog
	cli(tb, &c, "split", "--firmware", fw, "--modules", testkernel.ModulesDir(tb), "--out", out, "--json")
	return out, &c
}

// storeAll puts every image into a recorded machine's Kairos store, enabled for the active
// boot as kairos-agent enables them, and makes the machine a Kairos system booted active.
func storeAll(tb testing.TB, root, out string, c *split.Catalog) {
	tb.Helper()
	store := filepath.Join(root, plan.StoreRoot)
	if err := os.MkdirAll(filepath.Join(store, "active"), 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, img := range c.Images {
		if err := os.Link(filepath.Join(out, img.File), filepath.Join(store, img.File)); err != nil {
			tb.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(plan.StoreRoot, img.File), filepath.Join(store, "active", img.File)); err != nil {
			tb.Fatal(err)
		}
	}
	imagetest.WriteTree(tb, root, map[string]string{
		"run/cos/active_mode": "",
		"etc/os-release":      "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nKAIROS_VERSION=v3.5.0\n",
	})
}

// machinePlan is plan --json on a recorded machine with an empty kernel log.
func machinePlan(tb testing.TB, root string) *plan.Plan {
	tb.Helper()
	kmsg := filepath.Join(tb.TempDir(), "kmsg")
	if err := os.WriteFile(kmsg, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	var p plan.Plan
	cli(tb, &p, "plan", "--root", root, "--kernel-release", testkernel.Release, "--kmsg", kmsg, "--json")
	return &p
}

// TestSplitDebianKernelServesRecordedMachines splits a tree holding every firmware file the
// Debian kernel's modules declare, then checks the rule of docs/split.md on every file: a file
// one module declares is in that module's image, a file several declare in the image of the
// set, never in two. Then, on every recorded machine whose store holds all the images, plan
// must select exactly the images of the modules serving its devices.
func TestSplitDebianKernelServesRecordedMachines(t *testing.T) {
	fw, declared := syntheticFirmware(t)
	out, c := splitDebian(t, fw)
	onDisk, err := split.ReadCatalog(out)
	if err != nil || !reflect.DeepEqual(onDisk, c) {
		t.Fatalf("--json and catalog.json differ (%v)", err)
	}

	owners := map[string][]string{}
	for m, names := range declared {
		for _, n := range names {
			if !slices.Contains(owners[concreteName(n)], m) {
				owners[concreteName(n)] = append(owners[concreteName(n)], m)
			}
		}
	}
	imageOf := map[string]string{}
	kinds := map[string]string{}
	for _, ci := range c.Images {
		kinds[ci.Name] = ci.Kind
		img, err := manifests.Read(filepath.Join(out, ci.File))
		if err != nil {
			t.Fatal(err)
		}
		if !img.FromManifest || len(img.Firmware) != ci.Firmware {
			t.Errorf("%s: %d firmware (manifest %v), the catalog says %d", ci.Name, len(img.Firmware), img.FromManifest, ci.Firmware)
		}
		for _, f := range img.Firmware {
			if other, dup := imageOf[f.Name]; dup {
				t.Errorf("%s is in %s and %s", f.Name, other, ci.Name)
			}
			imageOf[f.Name] = ci.Name
		}
	}
	shared := 0
	for name, mods := range owners {
		sort.Strings(mods)
		want := "firmware-" + strings.Join(mods, "+")
		got := imageOf[name]
		if len(want) > 100 {
			want = fmt.Sprintf("firmware-%s+%d-more-", mods[0], len(mods)-1)
			got = got[:min(len(got), len(want))]
		}
		if got != want {
			t.Errorf("%s (declared by %v) is in %q, want %q", name, mods, imageOf[name], want)
		}
		if len(mods) > 1 {
			shared++
		}
	}
	if len(imageOf) != len(owners) || len(c.Images) < 150 || shared < 20 {
		t.Errorf("%d names in the images, %d declared; %d images, %d shared files: too few to prove anything", len(imageOf), len(owners), len(c.Images), shared)
	}

	var selections int
	for _, snap := range ghwSnapshots(t) {
		t.Run(filepath.Base(snap), func(t *testing.T) {
			root := unpackMachine(t, snap)
			storeAll(t, root, out, c)
			p := machinePlan(t, root)
			// The images of the modules expected to drive each device (hwmatch's Drivers):
			// radeon alone for ghw's Radeon HD 6670 machine, which amdgpu's catch-all also
			// matches, and none for the Tesla P100 bound to nvidia's own driver.
			want := map[string]bool{}
			for _, d := range p.Devices {
				switch {
				case d.Vendor == "1002" && d.Product == "6758" && !reflect.DeepEqual(d.Drivers, []string{"radeon"}):
					t.Errorf("%s (Radeon HD 6670): drivers %v, want radeon alone (modules %v)", d.ID, d.Drivers, d.Modules)
				case d.Driver == "nvidia" && len(d.Drivers) != 0:
					t.Errorf("%s (bound to nvidia): drivers %v, want none", d.ID, d.Drivers)
				}
				for _, m := range d.Drivers {
					for _, n := range declared[m] {
						if img, ok := imageOf[n]; ok {
							want[img] = true
						}
					}
				}
			}
			got := map[string]bool{}
			for _, s := range p.Selected {
				got[s.Name] = true
				if k := kinds[s.Name]; k != split.KindModule && k != split.KindShared {
					t.Errorf("selected %s, a %q image", s.Name, k)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("selected %v, want the images of the devices' drivers %v", sortedSet(got), sortedSet(want))
			}
			if len(p.Rejected) > 0 || len(p.Unresolved) > 0 {
				t.Errorf("rejected %+v, unresolved %v", p.Rejected, p.Unresolved)
			}
			selections += len(got)
			t.Logf("selected %v", sortedSet(got))
		})
	}
	if selections < 3 {
		t.Errorf("the recorded machines selected %d images in all: too few to prove anything", selections)
	}
}

// humanSize is how split prints sizes below 1 MiB.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

func sortedSet(set map[string]bool) []string {
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// BenchmarkSplitDebianKernel times split (erofs) of the synthetic tree of every firmware file the
// Debian kernel's modules declare, and reports the bytes of all images and, per recorded
// machine, the share its plan selects (the goal: at most 3 %) of the firmware bytes
// ("%fw-<machine>": the bytes of the firmware files the selected images hold against the whole
// tree's) and of the image bytes ("%image-<machine>", metadata and 4 KiB blocks included).
func BenchmarkSplitDebianKernel(b *testing.B) {
	fw, _ := syntheticFirmware(b)
	var out string
	var c *split.Catalog
	for b.Loop() {
		if out != "" {
			os.RemoveAll(out)
		}
		out, c = splitDebian(b, fw)
	}
	b.StopTimer()
	sizes, fwSizes := map[string]int64{}, map[string]int64{}
	var total, fwTotal int64
	for _, img := range c.Images {
		sizes[img.Name], fwSizes[img.Name] = img.Size, img.FirmwareBytes
		total += img.Size
		fwTotal += img.FirmwareBytes
	}
	b.ReportMetric(float64(total), "image-bytes")
	b.ReportMetric(float64(len(c.Images)), "images")
	for _, snap := range ghwSnapshots(b) {
		root := unpackMachine(b, snap)
		storeAll(b, root, out, c)
		var selected, fwSelected int64
		for _, s := range machinePlan(b, root).Selected {
			selected += sizes[s.Name]
			fwSelected += fwSizes[s.Name]
		}
		machine := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(snap), "linux-amd64-"), ".tar.gz")
		machine = machine[:min(len(machine), 12)]
		b.ReportMetric(100*float64(fwSelected)/float64(fwTotal), "%fw-"+machine)
		b.ReportMetric(100*float64(selected)/float64(total), "%image-"+machine)
	}
}

// TestSplitCommandLine: split --root with the Debian kernel, a --group and a --catch-all name
// into directories: one line per image, the totals, --json is the catalog; bad command lines
// exit 2 and problems exit 1, writing nothing.
func TestSplitCommandLine(t *testing.T) {
	fw := "/usr/lib/firmware/"
	root := fakeRoot(t, map[string]any{
		fw + "bnx2/bnx2-mips-09-6.2.1b.fw": "mips09",
		fw + "bnx2/bnx2-rv2p-09-6.0.17.fw": "rv2p09",
		fw + "rtl_nic/rtl8125b-2.fw":       "rtl8125b",
		fw + "tigon/tg3.bin":               "tg3",
		fw + "tg3-alias.bin":               &vfst.Symlink{Target: "tigon/tg3.bin"},
		fw + "WHENCE":                      "licences",
		"/lib":                             &vfst.Dir{Perm: 0o755},
	})
	if err := os.Symlink(filepath.Join(testkernel.Dir(t), "lib", "modules"), filepath.Join(root, "lib", "modules")); err != nil {
		t.Fatal(err)
	}
	args := []string{"split", "--root", root, "--kernel-release", testkernel.Release, "--firmware", filepath.Join(root, fw),
		"--format", "directory", "--group", "net=bnx2,r8169", "--catch-all", "other"}
	out := filepath.Join(t.TempDir(), "human")
	stdout, stderr, code := runCLI(t, append(args, "--out", out)...)
	c, err := split.ReadCatalog(out)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, stderr)
	}
	if len(c.Images) != 3 || c.Images[1].Name != "net" || c.Images[1].Kind != split.KindGroup ||
		!reflect.DeepEqual(c.Images[1].Modules, []string{"bnx2", "r8169"}) || c.Images[2].Kind != split.KindCatchAll {
		t.Fatalf("catalog images %+v", c.Images)
	}
	// A directory image's size counts every file in it, extension-release and manifest too.
	want := ""
	var total int64
	for i, n := range []int{2, 3, 1} {
		img := c.Images[i]
		if img.Firmware != n {
			t.Errorf("%s: %d firmware, want %d", img.Name, img.Firmware, n)
		}
		want += fmt.Sprintf("%s: %d file%s, %s\n", img.File, n, map[bool]string{true: "s"}[n > 1], humanSize(img.Size))
		total += img.Size
	}
	want += fmt.Sprintf("3 images (directory): 6 files, %s of images for 31 bytes of firmware, in %s\n", humanSize(total), out)
	if c.Images[0].Name != "firmware-tg3" || c.Images[2].Name != "other" || stdout != want {
		t.Errorf("output:\n%s\nwant:\n%s", stdout, want)
	}

	var fromJSON split.Catalog
	jsonOut := filepath.Join(t.TempDir(), "json")
	runJSON(t, &fromJSON, append(args, "--out", jsonOut, "--json")...)
	if !reflect.DeepEqual(&fromJSON, c) {
		t.Errorf("--json differs from the first run's catalog:\n%+v\n%+v", fromJSON, *c)
	}

	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"split", "--firmware", root}, 2, "--out DIR is required"},
		{append(args, "--out", t.TempDir()+"/x", "--format", "zip"), 2, `--format "zip"`},
		{append(args, "--out", t.TempDir()+"/x", "--modules", root), 2, "--modules and --root both name the kernel"},
		{[]string{"split", "--firmware", root, "--out", t.TempDir() + "/x", "--root", root}, 2, "--root needs --kernel-release"},
		{append(args, "--out", t.TempDir()+"/x", "--group", "net"), 2, "want NAME=MODULE"},
		{append(args, "--out", out), 1, "is not empty"},
		{append(args, "--out", t.TempDir()+"/x", "--group", "more=nosuch"), 1, `--group more: the kernel has no module "nosuch"`},
	} {
		stdout, stderr, code := runCLI(t, bad.args...)
		if code != bad.code || !strings.Contains(stderr, bad.want) || stdout != "" {
			t.Errorf("%v: exit %d (want %d), stderr lacks %q:\n%s%s", bad.args[len(bad.args)-2:], code, bad.code, bad.want, stdout, stderr)
		}
		if code == 1 && !strings.Contains(stderr, "nothing was written") {
			t.Errorf("%v: %s", bad.args, stderr)
		}
	}
}
