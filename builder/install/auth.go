package install

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// authenticate answers a WWW-Authenticate challenge the way docker does for an anonymous
// pull: a Bearer challenge names a token service (realm), which hands out a pull token for the
// repository. Credentials are not supported; a Basic challenge is an error.
func (r *registry) authenticate(ctx context.Context, challenge string) error {
	scheme, params := parseChallenge(challenge)
	if !strings.EqualFold(scheme, "bearer") || params["realm"] == "" {
		return fmt.Errorf("the registry asks for credentials (%q); install pulls anonymously only", challenge)
	}
	u, err := url.Parse(params["realm"])
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("token realm %q is not an http(s) URL", params["realm"])
	}
	q := u.Query()
	if svc := params["service"]; svc != "" {
		q.Set("service", svc)
	}
	scope := params["scope"]
	if scope == "" {
		scope = "repository:" + r.repo + ":pull"
	}
	q.Set("scope", scope)
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := get(ctx, r.client, req, r.stall)
	if err != nil {
		return fmt.Errorf("token from %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token from %s: %s", u.Redacted(), resp.Status)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return fmt.Errorf("token from %s: %w", u.Redacted(), err)
	}
	r.token = tok.Token
	if r.token == "" {
		r.token = tok.AccessToken
	}
	if r.token == "" {
		return fmt.Errorf("token from %s: the answer has no token", u.Redacted())
	}
	return nil
}

// parseChallenge splits `Bearer realm="...",service="...",scope="..."` (RFC 7235 auth-params,
// quoted strings with backslash escapes).
func parseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " ,")
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" {
			return scheme, params
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var val strings.Builder
		if strings.HasPrefix(after, `"`) {
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				val.WriteByte(after[i])
			}
			rest = after[min(i+1, len(after)):]
		} else {
			v, r, _ := strings.Cut(after, ",")
			val.WriteString(strings.TrimSpace(v))
			rest = r
		}
		params[key] = val.String()
	}
}
