package sysops

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/manifests/verity"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// This host has no device-mapper: the ioctls themselves run in QEMU
// (tests/qemu_verity_test.go). Here: the table, the buffers the kernel parses, and the checks
// made before device-mapper is touched.

func sampleTarget() VerityTarget {
	return VerityTarget{
		DataDev: "/dev/loop0", HashDev: "/dev/loop1",
		Params: verity.Params{HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096,
			DataBlocks: 2560, Salt: []byte{0xde, 0xad, 0xbe, 0xef}, HashOffset: 4096},
		RootHash: bytes.Repeat([]byte{0xab}, 32),
	}
}

func TestVerityTable(t *testing.T) {
	v := sampleTarget()
	got, err := v.Table()
	want := "1 /dev/loop0 /dev/loop1 4096 4096 2560 1 sha256 " + strings.Repeat("ab", 32) + " deadbeef"
	if err != nil || got != want {
		t.Fatalf("table %q, %v\nwant  %q", got, err, want)
	}
	if v.Sectors() != 2560*8 {
		t.Errorf("sectors %d", v.Sectors())
	}
	// systemd 252's repart: 512-byte blocks, so the tree starts at hash block 1 too; no salt
	// is "-"; the algorithm as the kernel's crypto API names it.
	v.Params.DataBlockSize, v.Params.HashBlockSize, v.Params.HashOffset, v.Params.Salt, v.Params.Algorithm = 512, 512, 512, nil, "SHA256"
	if got, _ := v.Table(); got != "1 /dev/loop0 /dev/loop1 512 512 2560 1 sha256 "+strings.Repeat("ab", 32)+" -" {
		t.Errorf("table %q", got)
	}
	for _, c := range []struct {
		edit func(*VerityTarget)
		want string
	}{
		{func(v *VerityTarget) { v.Params.HashType = 0 }, "hash type 0, want 1"},
		{func(v *VerityTarget) { v.Params.DataBlockSize = 1000 }, "block sizes 1000 (data) and 4096 (hash)"},
		{func(v *VerityTarget) { v.Params.HashBlockSize = 256 }, "block sizes 4096 (data) and 256 (hash)"},
		{func(v *VerityTarget) { v.Params.DataBlocks = 0 }, "covers no data block"},
		{func(v *VerityTarget) { v.Params.HashOffset = 512 }, "hash offset 512 is not a multiple of the hash block size 4096"},
		{func(v *VerityTarget) { v.RootHash = nil }, "no root hash"},
		{func(v *VerityTarget) { v.Params.Algorithm = "sha256 1 ignore_corruption" }, `hash algorithm "sha256 1 ignore_corruption"`},
		{func(v *VerityTarget) { v.Params.Algorithm = "" }, `hash algorithm ""`},
	} {
		v := sampleTarget()
		c.edit(&v)
		_, err := v.Table()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "/dev/loop0 over /dev/loop1") {
			t.Errorf("%+v: %v, want an error naming the devices and %q", v.Params, err, c.want)
		}
	}
}

// TestDMBuffers decodes what DM_TABLE_LOAD gets the way dm-ioctl.c reads it: the header's
// data_start points at the spec, whose parameter string ends in a NUL within data_size, and next
// is 8-byte aligned past it.
func TestDMBuffers(t *testing.T) {
	params, _ := sampleTarget().table("7:0", "7:1")
	buf, err := dmBuffer("kairos-firmware-fw", unix.DM_READONLY_FLAG, targetSpec("verity", 20480, params))
	if err != nil {
		t.Fatal(err)
	}
	var hdr unix.DmIoctl
	if err := binary.Read(bytes.NewReader(buf), binary.NativeEndian, &hdr); err != nil {
		t.Fatal(err)
	}
	name := string(hdr.Name[:bytes.IndexByte(hdr.Name[:], 0)])
	if hdr.Version != [3]uint32{4, 0, 0} || int(hdr.Data_size) != len(buf) || hdr.Data_start != 312 ||
		hdr.Target_count != 1 || hdr.Flags != unix.DM_READONLY_FLAG || name != "kairos-firmware-fw" || hdr.Uuid[0] != 0 {
		t.Fatalf("header %+v (name %q), buffer of %d bytes", hdr, name, len(buf))
	}
	var spec unix.DmTargetSpec
	if err := binary.Read(bytes.NewReader(buf[hdr.Data_start:]), binary.NativeEndian, &spec); err != nil {
		t.Fatal(err)
	}
	typ := string(spec.Target_type[:bytes.IndexByte(spec.Target_type[:], 0)])
	rest := buf[int(hdr.Data_start)+unix.SizeofDmTargetSpec:]
	nul := bytes.IndexByte(rest, 0)
	if typ != "verity" || spec.Sector_start != 0 || spec.Length != 20480 || nul < 0 || string(rest[:nul]) != params {
		t.Fatalf("spec %+v type %q params %q", spec, typ, rest)
	}
	if spec.Next%8 != 0 || int(spec.Next) < unix.SizeofDmTargetSpec+len(params)+1 || int(hdr.Data_start)+int(spec.Next) != len(buf) {
		t.Errorf("next %d for %d bytes of params, buffer %d", spec.Next, len(params), len(buf))
	}
	// A command without payload: the header alone.
	if buf, _ := dmBuffer("x", unix.DM_DEFERRED_REMOVE, nil); len(buf) != 312 || binary.NativeEndian.Uint32(buf[20:]) != 0 {
		t.Errorf("bare header: %d bytes, target_count %d", len(buf), binary.NativeEndian.Uint32(buf[20:]))
	}
}

func TestDMName(t *testing.T) {
	for name, ok := range map[string]bool{
		"kairos-firmware-fw-9": true, strings.Repeat("x", 127): true,
		"": false, strings.Repeat("x", 128): false, "a/b": false, "a\x00b": false,
	} {
		if err := checkDMName(name); (err == nil) != ok {
			t.Errorf("checkDMName(%q): %v", name, err)
		}
	}
}

// TestVerityCreateChecksFirst: what is wrong with the request is found before device-mapper is
// opened (nothing is created on this host), and the error names the device and the value.
func TestVerityCreateChecksFirst(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-device")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v := sampleTarget()
	v.DataDev = file
	_, err := Linux{}.VerityCreate("kairos-firmware-fw", v)
	if err == nil || !strings.Contains(err.Error(), "dm-verity kairos-firmware-fw: data device: "+file+" is not a block device") {
		t.Errorf("VerityCreate over a regular file: %v", err)
	}
	_, err = Linux{}.VerityCreate("a/b", sampleTarget())
	if err == nil || !strings.Contains(err.Error(), "dm-verity a/b: a device-mapper name cannot contain /") {
		t.Errorf("VerityCreate named a/b: %v", err)
	}
	if _, err := os.Stat(dmControl); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Dir(dmControl)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was created: %v", filepath.Dir(dmControl), err)
		}
	}
}

// TestVerityRemoveMissing: a device that does not exist is ENXIO, with or without
// device-mapper in the kernel (without it there is no control node, and nothing is created).
func TestVerityRemoveMissing(t *testing.T) {
	if os.Geteuid() != 0 {
		testkernel.Missing(t, "the device-mapper control node is root's")
	}
	name := fmt.Sprintf("kairos-firmware-test-absent-%d", os.Getpid())
	err := Linux{}.VerityRemove(name)
	if !errors.Is(err, unix.ENXIO) || !strings.Contains(err.Error(), "dm-verity "+name+": remove") {
		t.Errorf("VerityRemove(%s): %v, want ENXIO naming the device", name, err)
	}
}

// TestBlockNode makes the dm-N node an initramfs without devtmpfs lacks, finds one that
// exists, and refuses a node of another device.
func TestBlockNode(t *testing.T) {
	if os.Geteuid() != 0 {
		testkernel.Missing(t, "mknod needs root")
	}
	dir := t.TempDir()
	p, err := blockNode(dir, 7, 250)
	if err != nil || p != filepath.Join(dir, "dm-250") {
		t.Fatalf("blockNode: %q, %v", p, err)
	}
	if got, err := blockDevNumber(p); err != nil || got != "7:250" {
		t.Errorf("node %s is %q, %v", p, got, err)
	}
	if again, err := blockNode(dir, 7, 250); err != nil || again != p {
		t.Errorf("second blockNode: %q, %v", again, err)
	}
	if err := unix.Mknod(filepath.Join(dir, "dm-251"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := blockNode(dir, 7, 251); err == nil || !strings.Contains(err.Error(), "is not block device 7:251") || !strings.Contains(err.Error(), "device 7:1") {
		t.Errorf("a node of another device: %v", err)
	}
	if _, err := blockDevNumber(dir); err == nil || !strings.Contains(err.Error(), dir+" is not a block device") {
		t.Errorf("blockDevNumber of a directory: %v", err)
	}
}

// TestRecorderVerity: the Recorder records the table, hands out dm devices and refuses a target
// whose table cannot be written.
func TestRecorderVerity(t *testing.T) {
	r := &Recorder{}
	dev, err := r.VerityCreate("kairos-firmware-a", sampleTarget())
	if err != nil || dev != "/dev/dm-0" {
		t.Fatalf("%q, %v", dev, err)
	}
	bad := sampleTarget()
	bad.RootHash = nil
	if _, err := r.VerityCreate("kairos-firmware-b", bad); err == nil {
		t.Error("a target without root hash was accepted")
	}
	r.OnVerity = func(name string, _ VerityTarget) error { return fmt.Errorf("no %s", name) }
	if _, err := r.VerityCreate("kairos-firmware-c", sampleTarget()); err == nil || err.Error() != "no kairos-firmware-c" {
		t.Errorf("OnVerity: %v", err)
	}
	if err := r.VerityRemove("kairos-firmware-a"); err != nil {
		t.Fatal(err)
	}
	table, _ := sampleTarget().Table()
	want := []string{
		"verity kairos-firmware-a 20480 " + table + " -> /dev/dm-0",
		"verity kairos-firmware-b: verity table for /dev/loop0 over /dev/loop1: no root hash",
		"verity kairos-firmware-c 20480 " + table + ": no kairos-firmware-c",
		"verity-remove kairos-firmware-a",
	}
	if strings.Join(r.Calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(r.Calls, "\n"), strings.Join(want, "\n"))
	}
}
