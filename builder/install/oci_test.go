package install

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/builder/install/ocitest"
)

func installedContent(t *testing.T, root string, res *Result) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, res.File))
	must(t, err)
	if target, err := os.Readlink(filepath.Join(root, res.Link)); err != nil || target != res.File {
		t.Errorf("link %s -> %q (%v), want %s", res.Link, target, err, res.File)
	}
	return string(data)
}

// TestOCIArtifactAndImage pulls from go-containerregistry's registry on loopback: an artifact
// whose layer is the .raw itself (as oras pushes it), an image whose last layer (gzip or plain
// tar) holds the .raw over a base layer, and an index, by tag, by digest and in both URI forms.
func TestOCIArtifactAndImage(t *testing.T) {
	reg := ocitest.Serve(t, false)
	reg.Push(t, "kairos/fw-artifact:v1", ocitest.Artifact(t, "fw-artifact.sysext.raw", []byte("artifact image")))
	base := ocitest.Tar(t, "etc/os-release", "ID=base\n", "usr/bin/tool", "#!/bin/sh\n")
	last := ocitest.Tar(t, "fw-image.sysext.raw", "image layer content", "usr/share/doc.raw", "not top level")
	reg.Push(t, "kairos/fw-image:gz", ocitest.Image(t, true, base, last))
	reg.Push(t, "kairos/fw-image:tar", ocitest.Image(t, false, base, last))
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	reg.PushIndex(t, "kairos/fw-multi:v1", map[string]v1Image{
		"linux/" + runtime.GOARCH: ocitest.Artifact(t, "multi.sysext.raw", []byte("for this machine")),
		"linux/" + other:          ocitest.Artifact(t, "multi.sysext.raw", []byte("for the other one")),
	})
	digest := manifestDigest(t, reg, "kairos/fw-artifact:v1")

	for _, c := range []struct{ uri, file, content string }{
		{"oci:" + reg.Host + "/kairos/fw-artifact:v1", "fw-artifact.sysext.raw", "artifact image"},
		{"oci://" + reg.Host + "/kairos/fw-artifact@" + digest, "fw-artifact.sysext.raw", "artifact image"},
		{"oci:" + reg.Host + "/kairos/fw-image:gz", "fw-image.sysext.raw", "image layer content"},
		{"oci://" + reg.Host + "/kairos/fw-image:tar", "fw-image.sysext.raw", "image layer content"},
		{"oci:" + reg.Host + "/kairos/fw-multi:v1", "multi.sysext.raw", "for this machine"},
	} {
		root := t.TempDir()
		var log bytes.Buffer
		res, err := Install(context.Background(), c.uri, Options{Root: root, SHA256: sum([]byte(c.content)), Log: &log})
		if err != nil {
			t.Errorf("%s: %v", c.uri, err)
			continue
		}
		if res.File != "/var/lib/kairos/extensions/"+c.file || installedContent(t, root, res) != c.content {
			t.Errorf("%s: result %+v", c.uri, res)
		}
		if !strings.Contains(log.String(), "layer ") {
			t.Errorf("%s: no progress for the layer:\n%s", c.uri, log.String())
		}
	}
}

// TestOCIAnonymousTokenAuth follows a registry's Bearer challenge to its token endpoint.
func TestOCIAnonymousTokenAuth(t *testing.T) {
	reg := ocitest.Serve(t, true)
	reg.Push(t, "kairos/fw:v1", ocitest.Artifact(t, "fw.sysext.raw", []byte("behind a token")))
	pushTokens := reg.Tokens.Load()
	root := t.TempDir()
	res, err := Install(context.Background(), "oci:"+reg.Host+"/kairos/fw:v1", Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if installedContent(t, root, res) != "behind a token" || reg.Tokens.Load() != pushTokens+1 {
		t.Errorf("result %+v, %d token requests for the pull", res, reg.Tokens.Load()-pushTokens)
	}
}

// TestOCIFailuresLeaveTheStoreUntouched: a blob that does not match its digest, an unknown
// tag, a layer with two images, an index without this architecture, a checksum mismatch.
func TestOCIFailuresLeaveTheStoreUntouched(t *testing.T) {
	reg := ocitest.Serve(t, false)
	reg.Push(t, "kairos/fw:v1", ocitest.Artifact(t, "fw.sysext.raw", []byte("the image")))
	reg.Push(t, "kairos/two:v1", ocitest.Image(t, true, ocitest.Tar(t, "a.raw", "a", "b.raw", "b")))
	reg.Push(t, "kairos/none:v1", ocitest.Image(t, true, ocitest.Tar(t, "etc/os-release", "ID=x\n")))
	reg.PushIndex(t, "kairos/foreign:v1", map[string]v1Image{"linux/s390x": ocitest.Artifact(t, "x.raw", []byte("x"))})
	for _, c := range []struct{ ref, sha, want string }{
		{"kairos/fw:v2", "", "404"},
		{"kairos/two:v1", "", "more than one .raw (a.raw, b.raw)"},
		{"kairos/none:v1", "", "no layer holds a .raw"},
		{"kairos/foreign:v1", "", "no linux/" + runtime.GOARCH + " manifest (it has linux/s390x)"},
		{"kairos/fw:v1", sum([]byte("other")), "checksum mismatch"},
	} {
		root := seededRoot(t)
		before := snapshot(t, root)
		_, err := Install(context.Background(), "oci:"+reg.Host+"/"+c.ref, Options{Root: root, SHA256: c.sha})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.ref, err, c.want)
		}
		assertUntouched(t, before, root)
	}

	reg.SetTamper(func(b []byte) []byte { return bytes.Replace(b, []byte("the image"), []byte("evil image"), 1) })
	root := seededRoot(t)
	before := snapshot(t, root)
	_, err := Install(context.Background(), "oci:"+reg.Host+"/kairos/fw:v1", Options{Root: root})
	if err == nil || !strings.Contains(err.Error(), "blob has 10 bytes, its descriptor says 9") {
		t.Errorf("tampered blob: %v", err)
	}
	reg.SetTamper(func(b []byte) []byte { return bytes.Replace(b, []byte("the image"), []byte("the imagE"), 1) })
	_, err = Install(context.Background(), "oci:"+reg.Host+"/kairos/fw:v1", Options{Root: root})
	if err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("tampered blob: %v", err)
	}
	assertUntouched(t, before, root)
}
