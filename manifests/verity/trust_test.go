package verity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// goCert makes a self-signed certificate with Go's x509 (no tools needed).
func goCert(t testing.TB, cn string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1<<31, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func TestLoadTrustStore(t *testing.T) {
	dir := t.TempDir()
	a, b, c, d, e := goCert(t, "A", 1), goCert(t, "B", 2), goCert(t, "C", 3), goCert(t, "D", 4), goCert(t, "E", 5)
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	files := map[string][]byte{
		"run/verity.d/a.crt":          pemOf(a),
		"run/verity.d/b.der":          b.Raw,
		"run/verity.d/c.pem":          append(key, append(pemOf(c), pemOf(goCert(t, "second in file", 9))...)...),
		"run/verity.d/notes.txt":      pemOf(goCert(t, "ignored suffix", 10)),
		"run/verity.d/broken.crt":     []byte("not a certificate"),
		"run/verity.d/nocert.pem":     key,
		"run/verity.d/shadowed.crt":   pemOf(d),
		"etc/verity.d/shadowed.crt":   pemOf(goCert(t, "hidden by the earlier directory", 11)),
		"etc/verity.d/masked.crt":     pemOf(goCert(t, "masked", 12)),
		"usr/lib/verity.d/masked.crt": pemOf(goCert(t, "masked too", 13)),
		"elsewhere/e.crt":             pemOf(e),
	}
	for p, content := range files {
		writeFile(t, dir, p, content)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// An absolute symlink resolves inside the root; a link to /dev/null masks the name in
	// later directories; a directory with a certificate name is skipped.
	must(os.Symlink("/elsewhere/e.crt", filepath.Join(dir, "run/verity.d/e.crt")))
	must(os.MkdirAll(filepath.Join(dir, "run/verity.d/dir.crt"), 0o755))
	must(os.Symlink("/dev/null", filepath.Join(dir, "run/verity.d/masked.crt")))
	must(os.Symlink("/nowhere.crt", filepath.Join(dir, "run/verity.d/dangling.crt")))

	root, err := hostfs.New(dir)
	must(err)
	s := LoadTrustStore(root, []string{"/run/verity.d", "/etc/verity.d", "/missing/verity.d", "/usr/lib/verity.d"})
	var got []string
	for _, c := range s.Certs {
		got = append(got, c.Path+"="+c.Cert.Subject.CommonName)
	}
	want := []string{"/run/verity.d/a.crt=A", "/run/verity.d/b.der=B", "/run/verity.d/c.pem=C", "/run/verity.d/e.crt=E", "/run/verity.d/shadowed.crt=D"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("certificates:\n got %v\nwant %v", got, want)
	}
	var problems []string
	for _, p := range s.Problems {
		problems = append(problems, p.Error())
	}
	sort.Strings(problems)
	for i, w := range []string{
		"certificate /run/verity.d/broken.crt: not a PEM or DER certificate",
		"certificate /run/verity.d/dangling.crt: resolve /run/verity.d/dangling.crt",
		"certificate /run/verity.d/dir.crt: not a regular file",
		"certificate /run/verity.d/nocert.pem: PEM without a CERTIFICATE block",
	} {
		if i >= len(problems) || !strings.HasPrefix(problems[i], w) {
			t.Errorf("problem %d: got %q, want prefix %q", i, problems, w)
		}
	}
	if len(problems) != 4 {
		t.Errorf("problems: %q", problems)
	}

	// The running system's root, a missing directory: no certificates, no problems.
	if s := LoadTrustStore(nil, []string{filepath.Join(dir, "missing")}); len(s.Certs) != 0 || len(s.Problems) != 0 {
		t.Errorf("missing directory: %+v", s)
	}
}

func TestVerifyWithoutCertificates(t *testing.T) {
	var nilStore *TrustStore
	if _, err := nilStore.Verify(make([]byte, 32), []byte{0x30}); !errors.Is(err, ErrNoTrustedCerts) {
		t.Errorf("nil store: %v", err)
	}
	s := NewTrustStore(goCert(t, "A", 1))
	for _, der := range [][]byte{nil, {0x30, 0x80}, []byte("not der"), {0x30, 0x03, 0x02, 0x01, 0x01}} {
		if _, err := s.Verify(make([]byte, 32), der); !errors.Is(err, ErrBadSignature) {
			t.Errorf("Verify(%x) = %v, want ErrBadSignature", der, err)
		}
	}
}
