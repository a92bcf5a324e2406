package install

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveImages serves on 127.0.0.1: /fw.sysext.raw (the image), /moved/fw.sysext.raw (a
// redirect to it), /truncated.raw (half of its announced length), /stalled.raw (half, then
// nothing until the client gives up); anything else is 404.
func serveImages(t *testing.T, image []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fw.sysext.raw": // in 4 KiB pieces, so that progress has steps to report
			w.Header().Set("Content-Length", fmt.Sprint(len(image)))
			for b := image; len(b) > 0; b = b[min(len(b), 4096):] {
				w.Write(b[:min(len(b), 4096)])
				w.(http.Flusher).Flush()
				time.Sleep(time.Millisecond)
			}
		case "/moved/fw.sysext.raw":
			http.Redirect(w, r, "/fw.sysext.raw", http.StatusFound)
		case "/truncated.raw":
			w.Header().Set("Content-Length", fmt.Sprint(len(image)))
			w.Write(image[:len(image)/2])
		case "/stalled.raw":
			w.Header().Set("Content-Length", fmt.Sprint(len(image)))
			w.Write(image[:len(image)/2])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHTTPInstall downloads over loopback with progress as log lines (no terminal), and
// follows a redirect, keeping the file name of the URL given.
func TestHTTPInstall(t *testing.T) {
	image := bytes.Repeat([]byte("firmware"), 4096) // 32 KiB
	srv := serveImages(t, image)
	for _, p := range []string{"/fw.sysext.raw", "/moved/fw.sysext.raw?token=x"} {
		root := t.TempDir()
		var log bytes.Buffer
		res, err := Install(context.Background(), srv.URL+p, Options{Root: root, SHA256: sum(image), Log: &log})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if res.File != "/var/lib/kairos/extensions/fw.sysext.raw" || res.Bytes != int64(len(image)) {
			t.Errorf("%s: result %+v", p, res)
		}
		got, err := os.ReadFile(filepath.Join(root, res.File))
		must(t, err)
		if !bytes.Equal(got, image) {
			t.Errorf("%s: stored image differs", p)
		}
		checkProgressLines(t, log.String(), "fw.sysext.raw", "32.0 KiB")
	}
}

// checkProgressLines wants the log lines of a transfer: "fetching SIZE", rising percentages
// (at most one per tenth), "SIZE in DURATION"; no terminal control characters.
func checkProgressLines(t *testing.T, log, label, size string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	step := regexp.MustCompile(`^kairos-firmware install: ` + regexp.QuoteMeta(label) + `: (\d+)% \(.* of ` + size + `\)$`)
	last := 0
	for _, l := range lines[1 : len(lines)-1] {
		m := step.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("progress line %q", l)
			continue
		}
		pct, _ := strconv.Atoi(m[1])
		if pct <= last || pct >= 100 {
			t.Errorf("progress goes from %d%% to %d%%", last, pct)
		}
		last = pct
	}
	if len(lines) < 4 || len(lines) > 12 || lines[0] != "kairos-firmware install: "+label+": fetching "+size ||
		!strings.HasPrefix(lines[len(lines)-1], "kairos-firmware install: "+label+": "+size+" in ") || strings.ContainsAny(log, "\r\033") {
		t.Errorf("progress lines:\n%s", log)
	}
}

// TestHTTPFailuresLeaveTheStoreUntouched: 404, a body cut short, a stalled body and a
// checksum mismatch all fail and write nothing.
func TestHTTPFailuresLeaveTheStoreUntouched(t *testing.T) {
	image := bytes.Repeat([]byte("firmware"), 4096)
	srv := serveImages(t, image)
	for _, c := range []struct {
		path, sha, want string
	}{
		{"/missing.sysext.raw", "", "404 Not Found"},
		{"/truncated.raw", "", "unexpected EOF"},
		{"/stalled.raw", "", "no data received for 200ms"},
		{"/fw.sysext.raw", sum([]byte("other")), "checksum mismatch"},
	} {
		root := seededRoot(t)
		before := snapshot(t, root)
		var log bytes.Buffer
		_, err := Install(context.Background(), srv.URL+c.path, Options{Root: root, SHA256: c.sha, Stall: 200 * time.Millisecond, Log: &log})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.path, err, c.want)
		}
		assertUntouched(t, before, root)
	}
}

// TestRedirectFromHTTPSToHTTPIsRefused: a downgrade would lose the transport's integrity.
func TestRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	plain := serveImages(t, []byte("image"))
	tlsSrv := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/fw.sysext.raw", http.StatusFound))
	t.Cleanup(tlsSrv.Close)
	client := NewClient()
	client.Transport = tlsSrv.Client().Transport
	_, err := Install(context.Background(), tlsSrv.URL+"/fw.sysext.raw", Options{Root: t.TempDir(), Client: client})
	if err == nil || !strings.Contains(err.Error(), "refusing a redirect from https") {
		t.Errorf("error %v", err)
	}
}

// TestProgressBarOnATerminal draws in place and ends the line.
func TestProgressBarOnATerminal(t *testing.T) {
	var out bytes.Buffer
	m := (&Options{Log: &out, TTY: true}).meter("fw.raw", 1000)
	m.add(500)
	m.done(nil)
	s := out.String()
	if !strings.HasPrefix(s, "\rfw.raw [###############               ] 50% (500 B of 1000 B)\033[K") || !strings.HasSuffix(s, "\033[K\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("terminal output %q", s)
	}
}
