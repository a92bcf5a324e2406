package merge

import (
	"fmt"
	"os"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// BenchmarkMerge merges and unmerges two images of 2000 firmware files in 40 directories
// (erofs and squashfs, read in userspace for their layers and symlink checks) with the fake
// kernel: the cost of Merge itself, journal included, without the kernel's mounts (TestHostMerge
// logs those).
func BenchmarkMerge(b *testing.B) {
	f := newFixture(b)
	var fw []string
	for d := range 40 {
		for i := range 50 {
			fw = append(fw, fmt.Sprintf("vendor%02d/fw%02d.bin", d, i))
		}
		// the sysroot has some of the vendor directories, which the symlink check walks
		if d%4 == 0 {
			if err := os.MkdirAll(f.dir+fmt.Sprintf("/sysroot/usr/lib/firmware/vendor%02d", d), 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	images := []*manifests.Image{
		f.fileImage("/var/lib/kairos/extensions/big-e.raw", manifests.FormatErofs, firmwareFiles("big-e", fw...)),
		f.fileImage("/var/lib/kairos/extensions/big-s.raw", manifests.FormatSquashfs, firmwareFiles("big-s", fw...)),
	}
	b.ResetTimer()
	for range b.N {
		st, err := Merge(f.root, f.k, images, f.opts)
		if err != nil || len(st.Problems()) > 0 {
			b.Fatal(err, st.Problems())
		}
		if err := Unmerge(f.root, f.k, f.opts); err != nil {
			b.Fatal(err)
		}
	}
}
