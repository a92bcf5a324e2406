package plan

import (
	"slices"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// DecideVerified is Decide followed by the one integrity check Gather leaves to the images the
// plan selects: every data block of their dm-verity partitions is hashed
// (manifests.VerifyData). Gather reads a DDI through its hash tree, so a changed block it
// reads already rejects the image, but dm-verity checks a block only when it is read: a
// change inside a firmware file would otherwise be found by the kernel after the merge, as an
// I/O error. An image with a changed block joins the rejected and the plan is decided again
// without it (another image may take its place), so nothing of it is merged. Only selected
// images are hashed: the cost is about 1 ms per MiB and core (BenchmarkTreeVerifyData64MiB),
// too much to spend on every image of the stores at boot.
//
// in.ImageRoot is where the images are read from; when it is nil (an Input made by hand) the
// plan is Decide's. `plan` and `apply` (--dry-run or not) both decide through here.
func DecideVerified(in Input) *Plan {
	checked := map[string]bool{}
	for {
		p := Decide(in)
		if in.ImageRoot == nil {
			return p
		}
		changed := false
		for _, sel := range p.Selected {
			i := slices.IndexFunc(in.Images, func(img *manifests.Image) bool { return img.Path == sel.Path })
			if i < 0 || checked[sel.Path] {
				continue
			}
			checked[sel.Path] = true
			img := in.Images[i]
			if err := manifests.VerifyData(in.ImageRoot, img); err != nil {
				// Copies: the caller's Input stays as it was.
				in.Images = slices.Delete(slices.Clone(in.Images), i, i+1)
				in.Rejected = append(slices.Clone(in.Rejected), manifests.Rejected{Name: img.Name, Path: img.Path, Target: img.Target,
					Reason: "integrity: " + err.Error()})
				changed = true
			}
		}
		if !changed {
			return p
		}
	}
}
