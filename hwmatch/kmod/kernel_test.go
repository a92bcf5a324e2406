package kmod

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"
)

func TestResolvePrefersLoadableModulesLikeKmod(t *testing.T) {
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{
		"/usr/lib/modules/6.9.0/modules.alias": "alias pci:v00001234d*sv*sd*bc*sc*i* loadable_a\n" +
			"alias  pci:v00001234d000011E8*\tloadable-b\n" + // blanks of any kind, '-' normalised
			"alias broken\n",
		"/usr/lib/modules/6.9.0/modules.builtin.modinfo": "builtin_x.alias=pci:v00001234d*\x00builtin_y.alias=pci:v0000ABCDd*\x00builtin_y.firmware=y/fw.bin\x00",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	k, err := Open(fsys, "6.9.0")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if k.Dir != "/usr/lib/modules/6.9.0" {
		t.Errorf("Dir = %q: /usr/lib/modules must be searched when /lib/modules has no such release", k.Dir)
	}
	edu := "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00"
	other := "pci:v0000ABCDd00000001sv00000000sd00000000bc00sc00i00"
	got := k.Resolve([]string{edu, other, "", "usb:nothing"})
	want := map[string][]string{
		edu:   {"loadable_a", "loadable_b"}, // builtin_x matches too, but kmod stops at modules.alias
		other: {"builtin_y"},                // only a built-in module matches
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve = %v, want %v", got, want)
	}
	if fw, err := k.Firmware("builtin_y"); err != nil || !reflect.DeepEqual(fw, []string{"y/fw.bin"}) {
		t.Errorf("built-in firmware = %v, %v", fw, err)
	}
	if !strings.Contains(strings.Join(k.Warnings, "\n"), "modules.alias: 1 malformed lines skipped") {
		t.Errorf("warnings %q lack the malformed line", k.Warnings)
	}
	// A built-in module's firmware needs no modules.dep; a loadable one's does.
	if _, err := k.Firmware("loadable_a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Firmware of a module without modules.dep: %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(strings.Join(k.Warnings, "\n"), "modules.dep is missing") {
		t.Errorf("warnings %q lack the missing modules.dep", k.Warnings)
	}
}

func TestOpenRejectsBadRelease(t *testing.T) {
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{"/lib/modules/x/modules.alias": ""})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	for _, release := range []string{"", "..", "a/b"} {
		if _, err := Open(fsys, release); err == nil {
			t.Errorf("Open(%q) accepted an invalid release", release)
		}
	}
	if _, err := Open(fsys, "6.9.0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing release: %v, want fs.ErrNotExist", err)
	}
}
