package fwpath

import (
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

func TestFindFollowsTheKernelsOrder(t *testing.T) {
	const release = "6.1.0-56-amd64"
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{
		ParameterPath:                              "/run/kfw/firmware\n",
		"/run/kfw/firmware/a.bin":                  "custom",
		"/lib/firmware/a.bin":                      "base",
		"/lib/firmware/updates/b.bin.xz":           "updates, xz",
		"/lib/firmware/" + release + "/b.bin":      "per-release, plain: plain wins over every compressed variant",
		"/lib/firmware/c.bin.zst":                  "zstd only",
		"/lib/firmware/d.bin.zst":                  "zstd",
		"/lib/firmware/d.bin.xz":                   "xz",
		"/lib/firmware/dir.bin/x":                  "a directory is not firmware",
		"/boot/config-" + release:                  "#\nCONFIG_FW_LOADER_COMPRESS=y\nCONFIG_FW_LOADER_COMPRESS_XZ=y\n# CONFIG_FW_LOADER_COMPRESS_ZSTD is not set\n",
		"/lib/firmware/updates/" + release + "/.k": "",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	s := New(hostfs.FromFS(fsys.TempDir(), fsys), release)
	for name, want := range map[string]string{
		"a.bin":           "/run/kfw/firmware/a.bin",
		"b.bin":           "/lib/firmware/" + release + "/b.bin",
		"c.bin":           "", // this kernel cannot read .zst
		"d.bin":           "/lib/firmware/d.bin.xz",
		"dir.bin":         "",
		"missing.bin":     "",
		"../etc/passwd":   "",
		"/lib/firmware/a": "",
	} {
		if got := s.Find(name); got != want {
			t.Errorf("Find(%q) = %q, want %q", name, got, want)
		}
	}
	if s.Supports(".zst") || !s.Supports(".xz") || !s.Supports("") {
		t.Errorf("compression support from the kernel config: %v", s.Compression)
	}
}

func TestUnknownKernelConfigAcceptsEveryVariant(t *testing.T) {
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{"/lib/firmware/c.bin.zst": "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	s := New(hostfs.FromFS(fsys.TempDir(), fsys), "6.9.0")
	if got := s.Find("c.bin"); got != "/lib/firmware/c.bin.zst" {
		t.Errorf("Find = %q", got)
	}
	if len(s.Dirs) != 4 {
		t.Errorf("no firmware_class.path: want the 4 built-in directories, got %v", s.Dirs)
	}
}
