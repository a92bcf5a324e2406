package kmod

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/klauspost/compress/zstd"
	vfs "github.com/twpayne/go-vfs/v4"
	"github.com/ulikunitz/xz"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// TestCompressedModules stores real modules as .ko.xz, .ko.zst and .ko.gz in a modules tree of
// their own and checks that each declares the same firmware as the uncompressed original (and,
// for the formats Debian's kmod reads, the same as modinfo on that tree).
func TestCompressedModules(t *testing.T) {
	k, dir := debianKernel(t)
	modinfo := testkernel.Tool(t, "modinfo")
	src := map[string]string{ // module -> path under the modules dir
		"iwlwifi":  "kernel/drivers/net/wireless/intel/iwlwifi/iwlwifi.ko",
		"bnx2":     "kernel/drivers/net/ethernet/broadcom/bnx2.ko",
		"rtl8xxxu": "kernel/drivers/net/wireless/realtek/rtl8xxxu/rtl8xxxu.ko",
	}
	compressors := map[string]func([]byte) []byte{
		".xz": func(b []byte) []byte {
			var out bytes.Buffer
			w, err := xz.NewWriter(&out)
			must(t, err)
			_, err = w.Write(b)
			must(t, err)
			must(t, w.Close())
			return out.Bytes()
		},
		".zst": func(b []byte) []byte {
			w, err := zstd.NewWriter(nil)
			must(t, err)
			return w.EncodeAll(b, nil)
		},
		".gz": func(b []byte) []byte {
			var out bytes.Buffer
			w := gzip.NewWriter(&out)
			_, err := w.Write(b)
			must(t, err)
			must(t, w.Close())
			return out.Bytes()
		},
	}
	for ext, compress := range compressors {
		t.Run(ext, func(t *testing.T) {
			root := t.TempDir()
			modDir := filepath.Join(root, "lib/modules", testkernel.Release)
			var dep bytes.Buffer
			for _, rel := range src {
				data, err := os.ReadFile(filepath.Join(dir, "lib/modules", testkernel.Release, rel))
				must(t, err)
				target := filepath.Join(modDir, rel+ext)
				must(t, os.MkdirAll(filepath.Dir(target), 0o755))
				must(t, os.WriteFile(target, compress(data), 0o644))
				dep.WriteString(rel + ext + ":\n")
			}
			must(t, os.WriteFile(filepath.Join(modDir, "modules.dep"), dep.Bytes(), 0o644))
			ck, err := Open(vfs.NewPathFS(vfs.OSFS, root), testkernel.Release)
			must(t, err)
			defer ck.Close()
			for name := range src {
				got, err := ck.Firmware(name)
				must(t, err)
				want, err := k.Firmware(name)
				must(t, err)
				if len(want) == 0 || !reflect.DeepEqual(got, want) {
					t.Errorf("%s%s declares %v, uncompressed %v", name, ext, got, want)
				}
				if ext != ".gz" { // Debian's kmod 30 is built without zlib
					out, err := exec.Command(modinfo, "-F", "firmware", filepath.Join(modDir, src[name]+ext)).Output()
					must(t, err)
					if fw := bytes.Fields(out); len(fw) != len(got) {
						t.Errorf("modinfo on %s%s lists %d firmware, we %d", name, ext, len(fw), len(got))
					}
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
