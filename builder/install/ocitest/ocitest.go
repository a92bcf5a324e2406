// Package ocitest serves real OCI content over loopback for tests: go-containerregistry's
// in-process registry behind httptest, and helpers that push images, artifacts and indexes
// into it with go-containerregistry's own client. Only tests import it, so none of it is
// linked into kairos-firmware.
package ocitest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Token is the bearer token a registry served WithAuth hands out and requires.
const Token = "ocitest-pull-token"

// Registry is a registry on 127.0.0.1.
type Registry struct {
	// Host is host:port, for references (127.0.0.1:PORT/repo:tag).
	Host string
	// Tokens counts the token requests a registry WithAuth answered.
	Tokens atomic.Int32
	srv    *httptest.Server
	auth   bool
	tamper atomic.Pointer[func([]byte) []byte]
}

// SetTamper makes the registry rewrite every blob it serves with f (to test digest checks).
func (r *Registry) SetTamper(f func([]byte) []byte) {
	r.tamper.Store(&f)
}

// Serve starts a registry for the test. With auth, every /v2/ request needs the bearer token
// that the token endpoint hands out after a WWW-Authenticate challenge, as Docker Hub does.
func Serve(t testing.TB, auth bool) *Registry {
	t.Helper()
	r := &Registry{auth: auth}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.serve(reg, w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.Host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *Registry) serve(reg http.Handler, w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/token" {
		r.Tokens.Add(1)
		if !strings.HasPrefix(req.URL.Query().Get("scope"), "repository:") || req.URL.Query().Get("service") != "ocitest" {
			http.Error(w, "bad scope or service", http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"token":"`+Token+`"}`)
		return
	}
	if r.auth && req.Method == http.MethodGet && req.Header.Get("Authorization") != "Bearer "+Token {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.srv.URL+`/token",service="ocitest"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if tamper := r.tamper.Load(); tamper != nil && strings.Contains(req.URL.Path, "/blobs/") && req.Method == http.MethodGet {
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		body := (*tamper)(rec.Body.Bytes())
		w.WriteHeader(rec.Code)
		w.Write(body)
		return
	}
	reg.ServeHTTP(w, req)
}

// Ref parses host/repo:tag for go-containerregistry's client (plain http on loopback).
func (r *Registry) Ref(t testing.TB, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// Push pushes an image as host/repo:tag (go-containerregistry's client answers the registry's
// challenge itself).
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) {
	t.Helper()
	if err := remote.Write(r.Ref(t, repoTag), img); err != nil {
		t.Fatal(err)
	}
}

// Artifact is an OCI artifact as oras pushes a file: one layer that is the file itself,
// named by the org.opencontainers.image.title annotation.
func Artifact(t testing.TB, fileName string, content []byte) v1.Image {
	t.Helper()
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:       static.NewLayer(content, "application/vnd.oci.image.layer.v1.tar"),
		Annotations: map[string]string{"org.opencontainers.image.title": fileName},
	})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, "application/vnd.oci.empty.v1+json")
}

// Image is a container image of the given layers (each a tar, gzip-compressed when gz),
// as `FROM base` + `COPY x.raw /` builds one.
func Image(t testing.TB, gz bool, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		mt := types.OCIUncompressedLayer
		if gz {
			l, mt = gzipped(t, l), types.OCILayer
		}
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(l, mt)); err != nil {
			t.Fatal(err)
		}
	}
	return mutate.MediaType(img, types.OCIManifestSchema1)
}

// Tar is a tar archive of files (name -> content), in the order given as pairs.
func Tar(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, files[i+1])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// PushIndex pushes an index of images by platform ("linux/amd64" -> image) as host/repo:tag.
func (r *Registry) PushIndex(t testing.TB, repoTag string, byPlatform map[string]v1.Image) {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	for p, img := range byPlatform {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	if err := remote.WriteIndex(r.Ref(t, repoTag), idx); err != nil {
		t.Fatal(err)
	}
}
