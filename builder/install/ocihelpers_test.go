package install

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos-firmware/builder/install/ocitest"
)

type v1Image = v1.Image

// manifestDigest asks the registry, with go-containerregistry's client, for a tag's digest.
func manifestDigest(t *testing.T, reg *ocitest.Registry, repoTag string) string {
	t.Helper()
	desc, err := remote.Head(reg.Ref(t, repoTag))
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}
