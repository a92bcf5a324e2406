package merge

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// fixture is an initrd root in a temporary directory with a Kairos-like sysroot at /sysroot,
// a fake kernel, and Options pointing at both.
type fixture struct {
	t    testing.TB
	dir  string
	root *hostfs.Root
	k    *fakeKernel
	opts Options
}

const attrPath = "/sys/module/firmware_class/parameters/path"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{
		"/sysroot/usr/lib/firmware/host.bin":         "host firmware",
		"/sysroot/usr/lib/os-release":                "ID=kairos\n",
		"/sysroot/usr/bin/sh":                        "sh",
		"/sysroot/usr/share/doc/base/README":         "base",
		"/sysroot/usr/local/lib/firmware":            &vfst.Dir{Perm: 0o755},
		"/sysroot/var/lib/kairos/extensions":         &vfst.Dir{Perm: 0o755},
		"/sysroot/run":                               &vfst.Dir{Perm: 0o755},
		"/sys/module/firmware_class/parameters/path": "\n",
		"/run": &vfst.Dir{Perm: 0o755},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	f := &fixture{t: t, dir: fsys.TempDir(), root: hostfs.FromFS(fsys.TempDir(), fsys), k: newFakeKernel(t)}
	// Kairos' base links the updates directory to the persistent partition (kairos#4290).
	f.symlink("/sysroot/usr/lib/firmware/updates", "/usr/local/lib/firmware")
	f.opts = Options{Sysroot: "/sysroot", MountInfo: f.k.mountinfo}
	return f
}

// symlink makes a link with its target verbatim (vfst would rewrite an absolute one).
func (f *fixture) symlink(link, target string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.dir+link), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(target, f.dir+link); err != nil {
		f.t.Fatal(err)
	}
}

// dirImage makes a directory image at p in the sysroot.
func (f *fixture) dirImage(p string, files map[string]string) *manifests.Image {
	f.t.Helper()
	imagetest.WriteTree(f.t, f.dir+"/sysroot"+p, files)
	name, err := manifests.ImageName(p, true)
	if err != nil {
		f.t.Fatal(err)
	}
	return &manifests.Image{Name: name, Path: p, Format: manifests.FormatDirectory}
}

// fileImage builds an erofs or squashfs image at p in the sysroot.
func (f *fixture) fileImage(p string, format manifests.Format, files map[string]string) *manifests.Image {
	f.t.Helper()
	dst := f.dir + "/sysroot" + p
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		f.t.Fatal(err)
	}
	data, err := os.ReadFile(buildImage(f.t, format, files))
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	name, err := manifests.ImageName(p, false)
	if err != nil {
		f.t.Fatal(err)
	}
	return &manifests.Image{Name: name, Path: p, Format: format}
}

// firmwareFiles is an image tree with firmware and a release file.
func firmwareFiles(name string, fw ...string) map[string]string {
	files := map[string]string{"usr/lib/extension-release.d/extension-release." + name: "ID=_any\n"}
	for _, f := range fw {
		files[path.Join(manifests.FirmwareDir, f)] = name + ":" + f
	}
	return files
}

// calls returns the recorded calls with the fixture's directory shown as $ROOT.
func (f *fixture) calls() []string {
	var out []string
	for _, c := range f.k.Calls {
		out = append(out, strings.ReplaceAll(c, f.dir, "$ROOT"))
	}
	return out
}

func (f *fixture) read(p string) string {
	f.t.Helper()
	data, err := os.ReadFile(f.dir + p)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(data)
}

func (f *fixture) exists(p string) bool {
	_, err := os.Lstat(f.dir + p)
	return err == nil
}

// tree lists every path under the fixture with its type and, for files and links, content.
func (f *fixture) tree() []string {
	f.t.Helper()
	var out []string
	err := filepath.Walk(f.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, f.dir)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			out = append(out, rel+" -> "+t)
		case fi.IsDir():
			out = append(out, rel+"/")
		case strings.HasSuffix(p, ".raw"):
			data, _ := os.ReadFile(p)
			out = append(out, fmt.Sprintf("%s = %x", rel, sha256.Sum256(data)))
		default:
			data, _ := os.ReadFile(p)
			out = append(out, rel+" = "+string(data))
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// imageCache holds the images built so far (the crash tests build the same ones many times).
var imageCache = struct {
	sync.Mutex
	dir   string
	built map[string]string
}{built: map[string]string{}}

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashEnv); spec != "" {
		os.Exit(crashHelper(spec))
	}
	// RunDir is on a tmpfs (/run) in production. Merge renames state.json over itself, and on
	// ext4 such a rename flushes the file's data (auto_da_alloc), which makes the crash tests
	// slower than on a tmpfs: use one when there is one.
	var shm string
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && os.Getenv("TMPDIR") == "" {
		if dir, err := os.MkdirTemp("/dev/shm", "merge-test-"); err == nil {
			shm = dir
			os.Setenv("TMPDIR", dir)
		}
	}
	dir, err := os.MkdirTemp("", "merge-images-")
	if err != nil {
		panic(err)
	}
	imageCache.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if shm != "" {
		os.RemoveAll(shm)
	}
	os.Exit(code)
}

// buildImage returns an erofs or squashfs image of files, built once per test binary.
func buildImage(t testing.TB, format manifests.Format, files map[string]string) string {
	t.Helper()
	var keys []string
	for k, v := range files {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	key := fmt.Sprintf("%s %x", format, sha256.Sum256([]byte(strings.Join(keys, "\x00"))))
	imageCache.Lock()
	defer imageCache.Unlock()
	if p, ok := imageCache.built[key]; ok {
		return p
	}
	src, err := os.MkdirTemp(imageCache.dir, "src-")
	if err != nil {
		t.Fatal(err)
	}
	imagetest.WriteTree(t, src, files)
	dst := src + ".img"
	switch format {
	case manifests.FormatErofs:
		imagetest.Erofs(t, dst, src)
	case manifests.FormatSquashfs:
		imagetest.Squashfs(t, dst, src, "gzip")
	default:
		t.Fatalf("format %s", format)
	}
	imageCache.built[key] = dst
	return dst
}
