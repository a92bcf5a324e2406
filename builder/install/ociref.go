package install

import (
	"fmt"
	"net"
	"strings"
)

// ociRef is an image reference, normalised as docker and kairos-agent normalise one: no
// registry means Docker Hub, a one-part Docker Hub name is under library/, no tag and no digest
// means :latest.
type ociRef struct {
	registry string // host[:port] as written
	repo     string
	tag      string
	digest   string // sha256:<hex>, or empty
}

func (r ociRef) String() string {
	s := r.registry + "/" + r.repo
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest
	}
	return s
}

// reference is what the manifest is asked for by: the digest when given, else the tag.
func (r ociRef) reference() string {
	if r.digest != "" {
		return r.digest
	}
	return r.tag
}

// base is the registry's API root. Docker Hub's API lives at registry-1.docker.io. A registry
// on a loopback address is spoken to over plain http, as docker and go-containerregistry do;
// every other one over https.
func (r ociRef) base() string {
	host := r.registry
	if host == "docker.io" || host == "index.docker.io" {
		host = "registry-1.docker.io"
	}
	if loopback(host) {
		return "http://" + host
	}
	return "https://" + host
}

func loopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func parseOCIRef(s string) (ociRef, error) {
	var r ociRef
	name := s
	if before, digest, ok := strings.Cut(name, "@"); ok {
		if _, err := NormalizeSHA256(digest); err != nil || !strings.HasPrefix(digest, "sha256:") || digest != strings.ToLower(digest) {
			return r, fmt.Errorf("digest %q: want sha256:<64 lower-case hex digits>", digest)
		}
		name, r.digest = before, digest
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, r.tag = name[:i], name[i+1:]
		if !validTag(r.tag) {
			return r, fmt.Errorf("tag %q: want letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'", r.tag)
		}
	}
	if r.tag == "" && r.digest == "" {
		r.tag = "latest"
	}
	first, rest, found := strings.Cut(name, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		r.registry, r.repo = first, rest
	} else {
		r.registry, r.repo = "docker.io", name
		if !found {
			r.repo = "library/" + name
		}
	}
	if !validRepo(r.repo) {
		return r, fmt.Errorf("repository %q: want lower-case path components of letters, digits and '.', '_', '-'", r.repo)
	}
	return r, nil
}

func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func validRepo(repo string) bool {
	for _, part := range strings.Split(repo, "/") {
		if part == "" || strings.Trim(part, "._-") != part {
			return false
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
				return false
			}
		}
	}
	return true
}
