package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/builder/install/ocitest"
)

// installedImage is one entry of `install --json`.
type installedImage struct {
	URI       string `json:"uri"`
	File      string `json:"file"`
	Link      string `json:"link"`
	SHA256    string `json:"sha256"`
	Bytes     int64  `json:"bytes"`
	Unchanged bool   `json:"unchanged"`
	Error     string `json:"error"`
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// storeListing lists the store under root the way `kairos-agent sysext list` does (entries
// of a directory that are not directories and end in .raw), for the flat store and a profile.
func storeListing(t *testing.T, root, profile string) map[string]string {
	t.Helper()
	dir := filepath.Join(root, "var/lib/kairos/extensions", profile)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".raw" {
			continue
		}
		if e.Type()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(filepath.Join(dir, e.Name()))
			out[e.Name()] = "-> " + target
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

// TestInstallCLIFileTwice installs a file, prints the human line, and is idempotent.
func TestInstallCLIFileTwice(t *testing.T) {
	root := t.TempDir()
	img := filepath.Join(t.TempDir(), "linux-firmware-realtek.sysext.raw")
	if err := os.WriteFile(img, []byte("realtek firmware image"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCLI(t, "install", "file:"+img, "--root", root, "--profile", "passive")
	sum := sha256Hex([]byte("realtek firmware image"))
	want := fmt.Sprintf("installed /var/lib/kairos/extensions/linux-firmware-realtek.sysext.raw: 22 bytes, sha256 %s, link /var/lib/kairos/extensions/passive/linux-firmware-realtek.sysext.raw\n", sum)
	if code != 0 || stdout != want {
		t.Fatalf("exit %d\nstdout %q\nwant   %q\nstderr %s", code, stdout, want, stderr)
	}
	var again []installedImage
	runJSON(t, &again, "install", img, "--root", root, "--profile", "passive", "--sha256", strings.ToUpper(sum), "--json")
	if len(again) != 1 || !again[0].Unchanged || again[0].SHA256 != sum || again[0].URI != img {
		t.Errorf("second install: %+v", again)
	}
	if got := storeListing(t, root, ""); !reflect.DeepEqual(got, map[string]string{"linux-firmware-realtek.sysext.raw": "realtek firmware image"}) {
		t.Errorf("store: %v", got)
	}
	if got := storeListing(t, root, "passive"); !reflect.DeepEqual(got, map[string]string{"linux-firmware-realtek.sysext.raw": "-> /var/lib/kairos/extensions/linux-firmware-realtek.sysext.raw"}) {
		t.Errorf("passive: %v", got)
	}
}

// TestInstallCLIHTTPProgressAndMismatch: progress goes to stderr as log lines when stderr is
// not a terminal; a checksum mismatch exits 1 and leaves the store as it was.
func TestInstallCLIHTTPProgressAndMismatch(t *testing.T) {
	image := []byte(strings.Repeat("firmware", 1000))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/images/fw.sysext.raw" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(image)))
		w.Write(image)
	}))
	defer srv.Close()
	root := t.TempDir()
	var res []installedImage
	stderr := runJSON(t, &res, "install", srv.URL+"/images/fw.sysext.raw", "--root", root, "--json")
	if len(res) != 1 || res[0].File != "/var/lib/kairos/extensions/fw.sysext.raw" || res[0].Link != "/var/lib/kairos/extensions/common/fw.sysext.raw" || res[0].Bytes != 8000 {
		t.Errorf("result %+v", res)
	}
	if !strings.HasPrefix(stderr, "kairos-firmware install: fw.sysext.raw: fetching 7.8 KiB\n") || !strings.Contains(stderr, "kairos-firmware install: fw.sysext.raw: 7.8 KiB in ") || strings.Contains(stderr, "\r") {
		t.Errorf("progress on stderr:\n%s", stderr)
	}

	before := storeListing(t, root, "")
	_, stderr, code := runCLI(t, "install", srv.URL+"/images/fw.sysext.raw", "--root", root, "--sha256", sha256Hex([]byte("else")))
	if code != 1 || !strings.Contains(stderr, "checksum mismatch") {
		t.Errorf("mismatch: exit %d\n%s", code, stderr)
	}
	_, stderr, code = runCLI(t, "install", srv.URL+"/images/gone.sysext.raw", "--root", root)
	if code != 1 || !strings.Contains(stderr, "404 Not Found") {
		t.Errorf("404: exit %d\n%s", code, stderr)
	}
	if after := storeListing(t, root, ""); !reflect.DeepEqual(before, after) {
		t.Errorf("the store changed: %v -> %v", before, after)
	}
}

// TestInstallCLIOCI pulls an image whose last layer holds the .raw from go-containerregistry's
// registry on loopback.
func TestInstallCLIOCI(t *testing.T) {
	reg := ocitest.Serve(t, true)
	reg.Push(t, "kairos/linux-firmware-intel:v1", ocitest.Image(t, true,
		ocitest.Tar(t, "etc/os-release", "ID=scratch\n"),
		ocitest.Tar(t, "linux-firmware-intel.sysext.raw", "intel firmware image")))
	root := t.TempDir()
	var res []installedImage
	runJSON(t, &res, "install", "oci://"+reg.Host+"/kairos/linux-firmware-intel:v1", "--root", root, "--json", "--profile", "recovery")
	if len(res) != 1 || res[0].SHA256 != sha256Hex([]byte("intel firmware image")) || res[0].Link != "/var/lib/kairos/extensions/recovery/linux-firmware-intel.sysext.raw" {
		t.Errorf("result %+v", res)
	}
	if got := storeListing(t, root, "recovery"); got["linux-firmware-intel.sysext.raw"] != "-> /var/lib/kairos/extensions/linux-firmware-intel.sysext.raw" {
		t.Errorf("recovery: %v", got)
	}
}

// TestInstallCLIFromConfig installs firmware.install of the cloud-config under --root (here
// the new system's OEM partition as the after-install stage mounts it), verified by a catalog;
// one URI failing does not stop the others and makes the exit code 1.
func TestInstallCLIFromConfig(t *testing.T) {
	reg := ocitest.Serve(t, false)
	reg.Push(t, "kairos/fw-oci:v1", ocitest.Artifact(t, "fw-oci.sysext.raw", []byte("from the registry")))
	media := t.TempDir()
	local := filepath.Join(media, "fw-file.sysext.raw")
	if err := os.WriteFile(local, []byte("from the install media"), 0o644); err != nil {
		t.Fatal(err)
	}
	catalog := filepath.Join(media, "catalog.json")
	os.WriteFile(catalog, []byte(fmt.Sprintf(`{"images":[{"name":"fw-oci","file":"fw-oci.sysext.raw","sha256":%q},{"name":"fw-file","file":"fw-file.sysext.raw","sha256":%q}]}`,
		sha256Hex([]byte("from the registry")), sha256Hex([]byte("from the install media")))), 0o644)

	root := t.TempDir()
	writeConfig := func(uris ...string) {
		cfg := "#cloud-config\ninstall:\n  device: auto\nfirmware:\n  install:\n"
		for _, u := range uris {
			cfg += "    - " + u + "\n"
		}
		if err := os.MkdirAll(filepath.Join(root, "oem"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "oem/90_custom.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("file:"+local, "oci:"+reg.Host+"/kairos/fw-oci:v1")
	var res []installedImage
	runJSON(t, &res, "install", "--from-config", "--root", root, "--catalog", catalog, "--json")
	if len(res) != 2 || res[0].File != "/var/lib/kairos/extensions/fw-file.sysext.raw" || res[1].File != "/var/lib/kairos/extensions/fw-oci.sysext.raw" {
		t.Errorf("result %+v", res)
	}
	if got := storeListing(t, root, "common"); len(got) != 2 {
		t.Errorf("common: %v", got)
	}

	writeConfig("oci:"+reg.Host+"/kairos/fw-oci:v1", "oci:"+reg.Host+"/kairos/missing:v1")
	stdout, stderr, code := runCLI(t, "install", "--from-config", "--root", root)
	if code != 1 || !strings.HasPrefix(stdout, "unchanged /var/lib/kairos/extensions/fw-oci.sysext.raw: 17 bytes") || !strings.Contains(stderr, "missing:v1: GET") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	writeConfig()
	if stdout, stderr, code := runCLI(t, "install", "--from-config", "--root", root, "--json"); code != 0 || strings.TrimSpace(stdout) != "[]" || !strings.Contains(stderr, "lists no image") {
		t.Errorf("empty list: exit %d, %s %s", code, stdout, stderr)
	}
	writeConfig("ftp://example.org/x.raw")
	if stdout, stderr, code := runCLI(t, "install", "--from-config", "--root", root, "--json"); code != 1 || strings.TrimSpace(stdout) != "[]" ||
		!strings.Contains(stderr, `unsupported scheme "ftp"`) || !strings.Contains(stderr, "nothing was installed") {
		t.Errorf("invalid config: exit %d, %s", code, stderr)
	}
}

// TestInstallCLIUsage: bad command lines do nothing and exit 2.
func TestInstallCLIUsage(t *testing.T) {
	root := t.TempDir()
	for _, args := range [][]string{
		{"install"},
		{"install", "a.raw", "b.raw"},
		{"install", "a.raw", "--sha256", sha256Hex(nil), "--catalog", "c.json"},
		{"install", "--from-config", "a.raw"},
		{"install", "--from-config", "--sha256", sha256Hex(nil)},
		{"install", "a.raw", "--sha256", "abc"},
		{"install", "a.raw", "--catalog", filepath.Join(root, "missing.json")},
		{"install", "a.raw", "--root", filepath.Join(root, "missing")},
		{"install", "a.raw", "--no-such-flag"},
	} {
		full := append([]string{"install", "--root", root}, args[1:]...) // a --root in args comes later and wins
		if _, stderr, code := runCLI(t, full...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("a usage error wrote %v", entries)
	}
}
