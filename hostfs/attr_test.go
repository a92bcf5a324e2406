package hostfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"
	"github.com/twpayne/go-vfs/v4/vfst"
)

func TestReadAttr(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1000) // more than the first 4096-byte buffer
	fsys, cleanup, err := vfst.NewTestFS(map[string]any{
		"/sys/devices/x/modalias": "pci:v00008086d00001234\n",
		"/sys/devices/x/big":      big,
		"/sys/devices/x/empty":    "",
		"/sys/devices/x/page":     strings.Repeat("p", 4096), // fills the first buffer exactly
		"/sys/bus/x":              &vfst.Symlink{Target: "../devices/x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	r := FromFS(fsys.TempDir(), fsys)
	for p, want := range map[string]string{
		"/sys/devices/x/modalias": "pci:v00008086d00001234\n",
		"/sys/bus/x/modalias":     "pci:v00008086d00001234\n", // links followed, as FS.ReadFile does
		"/sys/devices/x/big":      big,
		"/sys/devices/x/empty":    "",
		"/sys/devices/x/page":     strings.Repeat("p", 4096),
	} {
		got, err := r.ReadAttr(p)
		if err != nil || string(got) != want {
			t.Errorf("ReadAttr(%s) = %d bytes, %v; want %d bytes", p, len(got), err, len(want))
		}
	}
	var pe *fs.PathError
	if _, err := r.ReadAttr("/sys/devices/x/missing"); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != "/sys/devices/x/missing" {
		t.Errorf("missing file: %v", err)
	}
	if _, err := r.ReadAttr("/sys/devices/x"); err == nil || !errors.As(err, &pe) || pe.Op != "read" {
		t.Errorf("directory: %v", err)
	}
}

// TestReadAttrRealSysfs: on the real sysfs (and procfs), ReadAttr reads what os.ReadFile reads,
// so the short read it takes for the end of a file is the end there too.
func TestReadAttrRealSysfs(t *testing.T) {
	files, _ := filepath.Glob("/sys/bus/pci/devices/*/uevent")
	files = append(files, "/sys/kernel/uevent_seqnum", "/proc/self/mountinfo", "/proc/modules")
	r := &Root{Dir: "/", FS: vfs.OSFS}
	read := 0
	for _, p := range files {
		want, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		got, err := r.ReadAttr(p)
		if err != nil || string(got) != string(want) {
			t.Errorf("ReadAttr(%s) = %q, %v; os.ReadFile gives %q", p, got, err, want)
		}
		read++
	}
	if read == 0 {
		t.Skip("no sysfs or procfs files to compare with")
	}
}
