package install

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// parseSource reads an image URI: file:PATH or a plain path, http(s)://URL, or an OCI
// reference as oci:REF, oci://REF (docker: and container:, which kairos-agent's parser takes
// as the same thing, also work).
func parseSource(uri string, opts *Options) (fetcher, error) {
	if uri == "" {
		return nil, fmt.Errorf("empty URI")
	}
	if strings.HasPrefix(uri, "/") || strings.HasPrefix(uri, ".") || !strings.Contains(uri, ":") {
		return newFileSource(uri, opts)
	}
	scheme, rest, _ := strings.Cut(uri, ":")
	switch strings.ToLower(scheme) {
	case "file":
		u, err := url.Parse(uri)
		if err != nil {
			return nil, err
		}
		p := u.Opaque
		if p == "" {
			if u.Host != "" && u.Host != "localhost" {
				return nil, fmt.Errorf("%s: file URI names host %q; only local files can be read", uri, u.Host)
			}
			p = u.Path
		}
		return newFileSource(p, opts)
	case "http", "https":
		u, err := url.Parse(uri)
		if err != nil {
			return nil, err
		}
		if u.Host == "" {
			return nil, fmt.Errorf("%s: no host", u.Redacted())
		}
		name := urlFileName(u)
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
		}
		return &httpSource{url: u, name: name, opts: opts}, nil
	case "oci", "docker", "container":
		ref, err := parseOCIRef(strings.TrimPrefix(rest, "//"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", uri, err)
		}
		return &ociSource{ref: ref, opts: opts}, nil
	}
	return nil, fmt.Errorf("%s: unsupported scheme %q; want file:, http:, https: or oci:", uri, scheme)
}

// fileSource is a file on the real file system (not under --root), as kairos-agent's file:
// source reads it. The image keeps the file's name.
type fileSource struct {
	path string
	opts *Options
}

func newFileSource(p string, opts *Options) (*fileSource, error) {
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	if err := checkName(filepath.Base(p)); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &fileSource{path: p, opts: opts}, nil
}

func (s *fileSource) fetch(ctx context.Context, dst *sink) (string, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", s.path)
	}
	name := filepath.Base(s.path)
	m := s.opts.meter(name, fi.Size())
	_, err = io.Copy(dst, m.reader(ctx, f))
	m.done(err)
	if err != nil {
		return "", fmt.Errorf("copying %s: %w", s.path, err)
	}
	return name, nil
}
