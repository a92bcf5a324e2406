package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"sync/atomic"
	"time"
)

// NewClient returns the client for http(s) URLs and registries: bounded time to connect, to
// finish the TLS handshake and to receive the response headers (a body that stalls is caught
// by the stall watchdog instead, since a whole-request deadline would cut large images short),
// proxies from the environment, at most 10 redirects and none from https to plain http.
func NewClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 30 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t, CheckRedirect: checkRedirect}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing a redirect from https to %s", req.URL.Redacted())
	}
	return nil
}

// get sends req; the response body is cancelled when no byte arrives for stall.
func get(ctx context.Context, client *http.Client, req *http.Request, stall time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	w := &watchdog{body: resp.Body, stall: stall, cancel: cancel}
	w.timer = time.AfterFunc(stall, func() { w.stalled.Store(true); cancel() })
	resp.Body = w
	return resp, nil
}

// watchdog re-arms its timer on every byte received; when it fires the request is cancelled.
type watchdog struct {
	body    io.ReadCloser
	stall   time.Duration
	timer   *time.Timer
	cancel  context.CancelFunc
	stalled atomic.Bool
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.body.Read(p)
	if n > 0 {
		w.timer.Reset(w.stall)
	}
	if err != nil && err != io.EOF && w.stalled.Load() {
		err = fmt.Errorf("no data received for %s: %w", w.stall, err)
	}
	return n, err
}

func (w *watchdog) Close() error {
	w.timer.Stop()
	err := w.body.Close()
	w.cancel()
	return err
}

// httpSource is an http:// or https:// URL. The file name is the last segment of the URL's
// path, as kairos-agent keeps it (it takes the base name of the whole URI, query included; the
// query is left out here).
type httpSource struct {
	url  *url.URL
	name string
	opts *Options
}

func (s *httpSource) fetch(ctx context.Context, dst *sink) (string, error) {
	where := s.url.Redacted()
	req, err := http.NewRequest(http.MethodGet, s.url.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := get(ctx, s.opts.client(), req, s.opts.stall())
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", where, resp.Status)
	}
	m := s.opts.meter(s.name, resp.ContentLength)
	n, err := io.Copy(dst, m.reader(ctx, resp.Body))
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	m.done(err)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", where, err)
	}
	return s.name, nil
}

func (o *Options) client() *http.Client {
	if o.Client == nil {
		o.Client = NewClient()
	}
	return o.Client
}

func (o *Options) stall() time.Duration {
	if o.Stall <= 0 {
		return DefaultStall
	}
	return o.Stall
}

func urlFileName(u *url.URL) string {
	if u.Path == "" || u.Path[len(u.Path)-1] == '/' {
		return ""
	}
	return path.Base(u.Path)
}
