package config

import (
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// newRoot builds a fake system tree (vfst notation: path -> contents) and returns it as a root.
func newRoot(t *testing.T, tree map[string]any) *hostfs.Root {
	t.Helper()
	fs, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return hostfs.FromFS(fs.TempDir(), fs)
}

// messages formats errors with Error(), for comparisons.
func messages(errs []Error) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}
