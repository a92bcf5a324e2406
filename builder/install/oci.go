package install

// The OCI distribution pull is written here on net/http rather than with
// go-containerregistry's pkg/v1/remote, the library Kairos itself uses: linking remote (with
// its authn, docker/cli config and logrus) grows the stripped static binary by 454,656 bytes
// (with authn.DefaultKeychain, 585,728), past the 9 MiB limit the binary must stay under
// (9,023,650 bytes before this package, which adds about 160 KiB with its command). What is
// needed is small: anonymous pulls, one manifest (or an index and one of its manifests), and
// blobs verified by their digest. The tests serve real OCI content with
// go-containerregistry's in-process registry.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"time"
)

// Media types of manifests and indexes, the Accept header of a manifest request.
const (
	mediaOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mediaDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerSchema2 = "application/vnd.docker.distribution.manifest.v2+json"
	manifestAccept     = mediaOCIIndex + ", " + mediaDockerList + ", " + mediaOCIManifest + ", " + mediaDockerSchema2
	// maxManifest bounds a manifest or index read into memory (registries cap them at 4 MiB).
	maxManifest = 4 << 20
	// titleAnnotation names the file a raw artifact layer holds (oras sets it).
	titleAnnotation = "org.opencontainers.image.title"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p *platform) String() string {
	if p == nil {
		return "no platform"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// manifest is an image manifest or an index (manifest list); only what the pull needs.
type manifest struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
	Layers    []descriptor `json:"layers"`
}

// ociSource is an image or artifact in a registry: the .raw is the file a layer holds (the
// last layer of an image that holds one), as Kairos publishes its extensions.
type ociSource struct {
	ref  ociRef
	opts *Options
}

// registry speaks the distribution API for one repository.
type registry struct {
	base   string
	repo   string
	client *http.Client
	stall  time.Duration
	token  string // bearer token, once a challenge asked for one
}

func (s *ociSource) fetch(ctx context.Context, dst *sink) (string, error) {
	r := &registry{base: s.ref.base(), repo: s.ref.repo, client: s.opts.client(), stall: s.opts.stall()}
	m, isIndex, err := r.manifest(ctx, s.ref.reference(), s.ref.digest)
	if err != nil {
		return "", err
	}
	for depth := 0; isIndex; depth++ {
		if depth == 2 {
			return "", fmt.Errorf("%s: indexes nested too deep", s.ref)
		}
		d, err := pickPlatform(m.Manifests)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.ref, err)
		}
		if m, isIndex, err = r.manifest(ctx, d.Digest, d.Digest); err != nil {
			return "", err
		}
	}
	if len(m.Layers) == 0 {
		return "", fmt.Errorf("%s: the manifest has no layers", s.ref)
	}
	for i := len(m.Layers) - 1; i >= 0; i-- {
		label := fmt.Sprintf("%s layer %d/%d", s.ref, i+1, len(m.Layers))
		name, err := r.layerRaw(ctx, m.Layers[i], dst, s.opts.meter(label, m.Layers[i].Size))
		if err != nil {
			return "", fmt.Errorf("%s: layer %s: %w", s.ref, m.Layers[i].Digest, err)
		}
		if name != "" {
			return name, nil
		}
	}
	return "", fmt.Errorf("%s: no layer holds a .raw file at its top level", s.ref)
}

// manifest fetches a manifest or index by tag or digest; a digest is verified.
func (r *registry) manifest(ctx context.Context, ref, digest string) (*manifest, bool, error) {
	resp, err := r.get(ctx, "/v2/"+r.repo+"/manifests/"+ref, manifestAccept)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return nil, false, fmt.Errorf("manifest %s: %w", ref, err)
	}
	if len(body) > maxManifest {
		return nil, false, fmt.Errorf("manifest %s is larger than %d bytes", ref, maxManifest)
	}
	if digest != "" {
		if sum := sha256.Sum256(body); "sha256:"+hex.EncodeToString(sum[:]) != digest {
			return nil, false, fmt.Errorf("manifest %s: content does not match its digest", ref)
		}
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, false, fmt.Errorf("manifest %s: %w", ref, err)
	}
	mediaType := m.MediaType
	if mediaType == "" {
		mediaType, _, _ = mime.ParseMediaType(resp.Header.Get("Content-Type"))
	}
	isIndex := mediaType == mediaOCIIndex || mediaType == mediaDockerList || (len(m.Manifests) > 0 && len(m.Layers) == 0)
	return &m, isIndex, nil
}

// pickPlatform chooses linux/GOARCH from an index; an index of one manifest without a platform
// (an artifact's) gives that one.
func pickPlatform(list []descriptor) (descriptor, error) {
	var have []string
	for _, d := range list {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return d, nil
		}
		have = append(have, d.Platform.String())
	}
	if len(list) == 1 && list[0].Platform == nil {
		return list[0], nil
	}
	return descriptor{}, fmt.Errorf("the index has no linux/%s manifest (it has %s)", runtime.GOARCH, strings.Join(have, ", "))
}

// get GETs a registry path, answering one authentication challenge.
func (r *registry) get(ctx context.Context, p, accept string) (*http.Response, error) {
	for challenged := false; ; challenged = true {
		req, err := http.NewRequest(http.MethodGet, r.base+p, nil)
		if err != nil {
			return nil, err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if r.token != "" {
			req.Header.Set("Authorization", "Bearer "+r.token)
		}
		resp, err := get(ctx, r.client, req, r.stall)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", r.base+p, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && !challenged {
			challenge := resp.Header.Get("WWW-Authenticate")
			resp.Body.Close()
			if err := r.authenticate(ctx, challenge); err != nil {
				return nil, fmt.Errorf("GET %s: %w", r.base+p, err)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s%s", r.base+p, resp.Status, registryError(resp.Body))
		}
		return resp, nil
	}
}

// registryError reads the distribution API's error body: {"errors":[{"code","message"}]}.
func registryError(body io.Reader) string {
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s: %s)", e.Errors[0].Code, e.Errors[0].Message)
}
