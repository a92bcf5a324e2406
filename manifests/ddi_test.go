package manifests

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// TestDDI reads GPT disk images that systemd-repart builds, as AuroraBoot's sysext output is
// built: the tree must read exactly as from the bare filesystem.
func TestDDI(t *testing.T) {
	if gpt.HostArch() != "x86-64" {
		t.Skipf("the fixtures use x86-64 partition types; this host is %q", gpt.HostArch())
	}
	src := fwTree(t)
	dir := t.TempDir()
	erofsImg := filepath.Join(dir, "fw.erofs")
	imagetest.Erofs(t, erofsImg, src)
	usrErofs := filepath.Join(dir, "usr.erofs")
	imagetest.Erofs(t, usrErofs, filepath.Join(src, "usr"))
	// a root partition whose usr directory the usr partition covers
	rootOnly := t.TempDir()
	imagetest.WriteTree(t, rootOnly, map[string]string{"usr/lib/extension-release.d/extension-release.fw": "ID=hidden\n", "etc/x": "x"})
	rootErofs := filepath.Join(dir, "root.erofs")
	imagetest.Erofs(t, rootErofs, rootOnly)

	verity := func(typ, img string) []gpttest.Part {
		return []gpttest.Part{
			{Type: typ, CopyBlocks: img, Verity: "data", VerityMatchKey: typ},
			{Type: typ + "-verity", Verity: "hash", VerityMatchKey: typ},
		}
	}
	cases := []struct {
		name      string
		parts     []gpttest.Part
		partition string
		inner     Format
		check     func(t *testing.T, d *DDI)
	}{
		{"auroraboot", append(verity("root", erofsImg), gpttest.Part{Type: "root-verity-sig", Verity: "signature", VerityMatchKey: "root"}),
			"root-x86-64", FormatErofs, func(t *testing.T, d *DDI) {
				p := d.Partitions
				if p.Root.Number != 1 || p.RootVerity == nil || p.RootVerity.Number != 2 || p.RootVeritySig == nil || p.RootVeritySig.Number != 3 {
					t.Errorf("partitions %+v", p)
				}
			}},
		{"erofs root", []gpttest.Part{{Type: "root", CopyBlocks: erofsImg}}, "root-x86-64", FormatErofs, nil},
		{"squashfs root with verity", []gpttest.Part{
			{Type: "root", Format: "squashfs", CopyFiles: src + ":/", Verity: "data", VerityMatchKey: "r"},
			{Type: "root-verity", Verity: "hash", VerityMatchKey: "r"}}, "root-x86-64", FormatSquashfs, nil},
		{"usr only", verity("usr", usrErofs), "usr-x86-64", FormatErofs, func(t *testing.T, d *DDI) {
			if d.Partitions.Root != nil || d.Partitions.UsrVerity == nil || d.Usr != "" {
				t.Errorf("usr-only DDI: %+v, Usr %q", d.Partitions, d.Usr)
			}
		}},
		{"root and usr", []gpttest.Part{{Type: "root", CopyBlocks: rootErofs}, {Type: "usr", Format: "squashfs", CopyFiles: filepath.Join(src, "usr") + ":/"}},
			"root-x86-64", FormatErofs, func(t *testing.T, d *DDI) {
				if d.Usr != "usr-x86-64" || d.UsrInner != FormatSquashfs {
					t.Errorf("Usr %q %q", d.Usr, d.UsrInner)
				}
			}},
		{"other architecture", []gpttest.Part{{Type: "root-arm64", CopyBlocks: erofsImg}}, "root-arm64", FormatErofs, nil},
		{"no-auto root skipped", []gpttest.Part{{Type: "root", CopyBlocks: rootErofs, Extra: []string{"NoAuto=yes"}}, {Type: "root-x86", CopyBlocks: erofsImg}},
			"root-x86", FormatErofs, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := filepath.Join(t.TempDir(), "fw.raw")
			gpttest.Repart(t, raw, c.parts)
			img, err := Read(raw)
			if err != nil {
				t.Fatal(err)
			}
			if img.Name != "fw" || img.Format != FormatGPT || img.Inner != c.inner || img.Partition != c.partition {
				t.Errorf("Name %q Format %q Inner %q Partition %q; want fw, gpt, %s, %s", img.Name, img.Format, img.Inner, img.Partition, c.inner, c.partition)
			}
			wantRel := map[string]string{"ID": "_any", "ARCHITECTURE": "x86-64", "VERSION_ID": "1.0"}
			if !reflect.DeepEqual(img.Release, wantRel) {
				t.Errorf("Release %q, want %q", img.Release, wantRel)
			}
			if !reflect.DeepEqual(img.Firmware, wantFirmware) {
				t.Errorf("Firmware:\n%s\nwant:\n%s", dump(img.Firmware), dump(wantFirmware))
			}
			checkProblems(t, img.Problems)
			fsys, format, closer, err := Open(raw)
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			ifs := fsys.(*ImageFS)
			if format != FormatGPT || ifs.DDI == nil || ifs.DDI.Table == nil {
				t.Fatalf("Open: format %q DDI %+v", format, ifs.DDI)
			}
			if data, err := ifs.ReadFile("usr/lib/firmware/linkdir/deep.bin"); err != nil || string(data) != "deep" {
				t.Errorf("ReadFile through a directory link = %q, %v", data, err)
			}
			ents, err := ifs.ReadDir(".")
			if err != nil || len(ents) == 0 || !hasEntry(ents, "usr", true) {
				t.Errorf("ReadDir(.) = %v, %v; want a usr directory", ents, err)
			}
			if c.check != nil {
				c.check(t, ifs.DDI)
			}
		})
	}
}

func hasEntry(ents []os.DirEntry, name string, dir bool) bool {
	for _, e := range ents {
		if e.Name() == name && e.IsDir() == dir {
			return true
		}
	}
	return false
}

// TestDDIRejects: DDIs systemd-sysext cannot use are refused with the reason.
func TestDDIRejects(t *testing.T) {
	if gpt.HostArch() != "x86-64" {
		t.Skipf("the fixtures use x86-64 partition types; this host is %q", gpt.HostArch())
	}
	src := fwTree(t)
	dir := t.TempDir()
	erofsImg := filepath.Join(dir, "fw.erofs")
	imagetest.Erofs(t, erofsImg, src)
	noUsr := t.TempDir()
	imagetest.WriteTree(t, noUsr, map[string]string{"etc/x": "x"})
	noUsrImg := filepath.Join(dir, "nousr.erofs")
	imagetest.Erofs(t, noUsrImg, noUsr)
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a filesystem", 1024)), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		parts []gpttest.Part
		want  string
	}{
		{"ext4", []gpttest.Part{{Type: "root", Format: "ext4", CopyFiles: src + ":/"}}, "partition 1 (root-x86-64): ext4 image: not supported"},
		{"verity without root", []gpttest.Part{{Type: "usr", CopyBlocks: erofsImg}, {Type: "root-verity", CopyBlocks: erofsImg}},
			"partition 2 is root-x86-64-verity but there is no root-x86-64 partition"},
		{"no root or usr", []gpttest.Part{{Type: "esp", CopyBlocks: erofsImg}}, "no root or usr partition (and no generic Linux partition) among partitions 1: c12a7328-f81f-11d2-ba4b-00a0c93ec93b"},
		{"usr without mount point", []gpttest.Part{{Type: "root", CopyBlocks: noUsrImg}, {Type: "usr", CopyBlocks: erofsImg}},
			"partition 1 (root-x86-64) has no usr directory to mount partition 2 (usr-x86-64) on"},
		{"garbage partition", []gpttest.Part{{Type: "root", CopyBlocks: junk}}, "partition 1 (root-x86-64): unknown image format"},
	}
	for _, c := range cases {
		raw := filepath.Join(t.TempDir(), "fw.raw")
		gpttest.Repart(t, raw, c.parts)
		_, err := Read(raw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Read = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
