package install

import "testing"

// TestParseOCIRef normalises references as docker (and kairos-agent's
// reference.ParseNormalizedNamed) does, and picks the API base.
func TestParseOCIRef(t *testing.T) {
	digest := "sha256:" + sum([]byte("x"))
	for in, want := range map[string]struct{ ref, base string }{
		"alpine":                           {"docker.io/library/alpine:latest", "https://registry-1.docker.io"},
		"kairos/fw":                        {"docker.io/kairos/fw:latest", "https://registry-1.docker.io"},
		"quay.io/kairos/fw:v1.2":           {"quay.io/kairos/fw:v1.2", "https://quay.io"},
		"localhost:5000/fw":                {"localhost:5000/fw:latest", "http://localhost:5000"},
		"127.0.0.1:5000/a/b/c:t@" + digest: {"127.0.0.1:5000/a/b/c:t@" + digest, "http://127.0.0.1:5000"},
		"[::1]:5000/fw@" + digest:          {"[::1]:5000/fw@" + digest, "http://[::1]:5000"},
		"registry.example:443/fw:x_y-z.1":  {"registry.example:443/fw:x_y-z.1", "https://registry.example:443"},
	} {
		r, err := parseOCIRef(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if r.String() != want.ref || r.base() != want.base {
			t.Errorf("%s: %s at %s, want %s at %s", in, r, r.base(), want.ref, want.base)
		}
	}
	for _, bad := range []string{"", "Quay.io/Fw", "quay.io/fw:", "quay.io/fw:-x", "fw@sha256:abc", "fw@md5:" + sum(nil)[:32], "quay.io//fw"} {
		if r, err := parseOCIRef(bad); err == nil {
			t.Errorf("%q accepted as %s", bad, r)
		}
	}
}

// TestParseChallenge reads the auth-params of a WWW-Authenticate header.
func TestParseChallenge(t *testing.T) {
	scheme, p := parseChallenge(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io", scope="repository:library/alpine:pull,push",error="a \"quoted\" word"`)
	if scheme != "Bearer" || p["realm"] != "https://auth.docker.io/token" || p["service"] != "registry.docker.io" ||
		p["scope"] != "repository:library/alpine:pull,push" || p["error"] != `a "quoted" word` {
		t.Errorf("%s %q", scheme, p)
	}
	if scheme, p := parseChallenge(`Basic realm=registry`); scheme != "Basic" || p["realm"] != "registry" {
		t.Errorf("%s %q", scheme, p)
	}
}
