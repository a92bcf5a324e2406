package split

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

const release = "6.1.0-test"

// fakeKernel writes a kernel whose modules are built in (modules.builtin.modinfo gives their
// aliases and firmware, so no .ko is needed) and returns its modules directory. decl maps a
// module to its declared firmware; each module gets one alias. ghost is in modules.dep without
// a file.
func fakeKernel(t *testing.T, decl map[string][]string) string {
	t.Helper()
	var modinfo []string
	for m, fw := range decl {
		modinfo = append(modinfo, m+".alias=pci:v0000"+m+"d*")
		for _, f := range fw {
			modinfo = append(modinfo, m+".firmware="+f)
		}
	}
	sort.Strings(modinfo)
	dir := filepath.Join(t.TempDir(), release)
	imagetest.WriteTree(t, dir, map[string]string{
		"modules.builtin.modinfo": strings.Join(modinfo, "\x00") + "\x00",
		"modules.dep":             "kernel/drivers/ghost.ko:\n",
		"modules.alias":           "alias usb:v1234p*d* ghost\n",
	})
	return dir
}

// tree writes a firmware tree (imagetest.WriteTree: "->target" makes a link).
func firmwareTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "firmware")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	imagetest.WriteTree(t, dir, files)
	return dir
}

// options are Options for a firmware tree and a fake kernel, writing into a new directory.
func options(t *testing.T, fw, modDir string, format Format) Options {
	t.Helper()
	kfs, r, cleanup, err := ModulesDir(modDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return Options{FirmwareDir: fw, KernelFS: kfs, KernelRelease: r, Out: filepath.Join(t.TempDir(), "out"), Format: format,
		Release: Release{ID: "_any", Architecture: "x86-64"}, CatchAll: DefaultCatchAll}
}

// planOf assigns a tree with the fake kernel's modules and the groups, without writing.
func planOf(t *testing.T, fw, modDir string, groups ...Group) (*assignment, *tree) {
	t.Helper()
	tr, _, err := readTree(fw)
	if err != nil {
		t.Fatal(err)
	}
	opts := options(t, fw, modDir, FormatDirectory)
	modules, _, err := kernelModules(opts)
	if err != nil {
		t.Fatal(err)
	}
	a, err := assign(tr, modules, groups, DefaultCatchAll)
	if err != nil {
		t.Fatal(err)
	}
	return a, tr
}

// contents lists each image's entries: name -> sorted tree paths.
func contents(a *assignment) map[string][]string {
	out := map[string][]string{}
	for name, img := range a.images {
		out[name] = sortedKeys(img.entries)
	}
	return out
}

func assertEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}
