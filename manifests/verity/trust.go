package verity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"sort"
	"strings"

	"github.com/smallstep/pkcs7"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// DefaultCertDirs are the certificate directories read by default. On a Kairos UKI boot
// immucore writes the Secure Boot db certificates to /run/verity.d (ExtractCerts); on a GRUB
// boot nothing does. systemd itself also reads /etc/verity.d, /usr/local/lib/verity.d and
// /usr/lib/verity.d (CONF_PATHS_NULSTR("verity.d")); callers add what they trust.
var DefaultCertDirs = []string{"/run/verity.d"}

// CertSuffixes are the file name endings read from a certificate directory. systemd reads only
// PEM `*.crt` files; `.pem` and `.der` (and DER content) are accepted here too.
var CertSuffixes = []string{".crt", ".pem", ".der"}

// maxCertFile bounds what is read of one certificate file.
const maxCertFile = 1 << 20

// Errors a signature check wraps, so that callers can tell the cases apart.
var (
	// ErrNoTrustedCerts: no certificate was found, so no signature can be verified (a GRUB
	// boot has none in /run/verity.d).
	ErrNoTrustedCerts = errors.New("no trusted certificates")
	// ErrUntrustedSigner: the signature is made with a certificate that is not trusted.
	ErrUntrustedSigner = errors.New("signer is not a trusted certificate")
	// ErrBadSignature: the signature is malformed or does not match the root hash.
	ErrBadSignature = errors.New("signature does not verify")
)

// Certificate is one trusted certificate and where it was read.
type Certificate struct {
	Path        string // the file, as a path under the root
	Cert        *x509.Certificate
	Fingerprint [32]byte // SHA-256 of the DER, as systemd-repart's certificateFingerprint
}

// String names the certificate for messages: path, subject and fingerprint.
func (c *Certificate) String() string {
	return fmt.Sprintf("%s (subject %q, sha256 %x)", c.Path, c.Cert.Subject.String(), c.Fingerprint)
}

// TrustStore is the set of certificates a signature must come from. As in systemd's
// validate_signature_userspace(), each certificate is a trust anchor by itself: the signer of a
// signature must be one of them (matched by the issuer and serial number the signature names,
// then checked with its public key); certificates embedded in the signature are not used, no
// chain is built and validity periods are not checked (PKCS7_NOINTERN|PKCS7_NOVERIFY).
type TrustStore struct {
	// Dirs are the directories read, in order.
	Dirs []string
	// Certs are the certificates found.
	Certs []*Certificate
	// Problems are the files that were skipped, with the reason (systemd skips them silently).
	Problems []error
}

// NewTrustStore is a store of the given certificates (for callers that have them already).
func NewTrustStore(certs ...*x509.Certificate) *TrustStore {
	s := &TrustStore{}
	for _, c := range certs {
		s.Certs = append(s.Certs, &Certificate{Path: "(given)", Cert: c, Fingerprint: sha256.Sum256(c.Raw)})
	}
	return s
}

// LoadTrustStore reads the certificates in dirs (absolute paths under root; nil root is the
// running system), like systemd's conf_files_list over the verity.d directories: a file name
// found in an earlier directory hides the same name in later ones, a symlink to /dev/null masks
// it, only regular files (after following symlinks inside the root) with a CertSuffixes ending
// are read. A file holds PEM (the first CERTIFICATE block is used, as OpenSSL's PEM_read_X509
// does) or DER. Missing directories are no problem; unreadable or unparsable files are skipped
// and listed in Problems.
func LoadTrustStore(root *hostfs.Root, dirs []string) *TrustStore {
	if root == nil {
		var err error
		if root, err = hostfs.New("/"); err != nil {
			return &TrustStore{Dirs: dirs, Problems: []error{err}}
		}
	}
	s := &TrustStore{Dirs: append([]string(nil), dirs...)}
	seen := map[string]bool{}
	type entry struct{ name, path string }
	var files []entry
	for _, dir := range dirs {
		entries, err := root.FS.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.Problems = append(s.Problems, fmt.Errorf("certificate directory %s: %w", dir, err))
			}
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if seen[name] || !hasCertSuffix(name) {
				continue
			}
			seen[name] = true
			files = append(files, entry{name, path.Join(dir, name)})
		}
	}
	// conf_files_list returns the files ordered by name, whatever their directory.
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	for _, f := range files {
		c, err := readCert(root, f.path)
		if err != nil {
			s.Problems = append(s.Problems, fmt.Errorf("certificate %s: %w", f.path, err))
			continue
		}
		if c != nil {
			s.Certs = append(s.Certs, c)
		}
	}
	return s
}

func hasCertSuffix(name string) bool {
	for _, suf := range CertSuffixes {
		if strings.HasSuffix(name, suf) && len(name) > len(suf) {
			return true
		}
	}
	return false
}

// readCert reads one certificate file; a masked file gives nil, nil.
func readCert(root *hostfs.Root, p string) (*Certificate, error) {
	if target, err := root.FS.Readlink(p); err == nil && path.Clean(target) == "/dev/null" {
		return nil, nil // masked
	}
	resolved, err := root.Resolve(p)
	if err != nil {
		return nil, err
	}
	info, err := root.FS.Lstat(resolved)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", info.Mode().Type())
	}
	if info.Size() > maxCertFile {
		return nil, fmt.Errorf("%d bytes, at most %d", info.Size(), maxCertFile)
	}
	b, err := root.FS.ReadFile(resolved)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificate(b)
	if err != nil {
		return nil, err
	}
	return &Certificate{Path: p, Cert: cert, Fingerprint: sha256.Sum256(cert.Raw)}, nil
}

// ParseCertificate reads one X.509 certificate from PEM (the first CERTIFICATE or
// X509 CERTIFICATE block; other blocks are skipped) or DER.
func ParseCertificate(b []byte) (*x509.Certificate, error) {
	if bytes.Contains(b, []byte("-----BEGIN ")) {
		rest := b
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				return nil, errors.New("PEM without a CERTIFICATE block")
			}
			if blk.Type == "CERTIFICATE" || blk.Type == "X509 CERTIFICATE" {
				c, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					return nil, fmt.Errorf("PEM CERTIFICATE block: %w", err)
				}
				return c, nil
			}
		}
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("not a PEM or DER certificate: %w", err)
	}
	return c, nil
}

// where names the directories for messages.
func (s *TrustStore) where() string {
	if len(s.Dirs) == 0 {
		return "the trust store"
	}
	return strings.Join(s.Dirs, ", ")
}

// Verify checks the detached PKCS#7 signature der over the lowercase hex form of rootHash (what
// systemd-repart signs, with PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY) with the trusted
// certificates, as systemd's validate_signature_userspace() does, and returns the certificate
// that signed it. Errors wrap ErrNoTrustedCerts, ErrUntrustedSigner or ErrBadSignature.
func (s *TrustStore) Verify(rootHash, der []byte) (*Certificate, error) {
	if s == nil || len(s.Certs) == 0 {
		where := "the trust store"
		if s != nil {
			where = s.where()
		}
		return nil, fmt.Errorf("%w in %s: the signature cannot be verified", ErrNoTrustedCerts, where)
	}
	p7, err := parsePKCS7(der)
	if err != nil {
		return nil, fmt.Errorf("%w: not a PKCS#7 signature: %v", ErrBadSignature, err)
	}
	if len(p7.Signers) == 0 {
		return nil, fmt.Errorf("%w: the PKCS#7 signature has no signer", ErrBadSignature)
	}
	// Name each signer by what the signature says (issuer, serial) and, when it embeds the
	// signer's certificate, its subject: only for messages, the embedded copy is never trusted.
	embedded := p7.Certificates
	trusted := make([]*x509.Certificate, len(s.Certs))
	for i, c := range s.Certs {
		trusted[i] = c.Cert
	}
	var signer *Certificate
	for _, si := range p7.Signers {
		ias := si.IssuerAndSerialNumber
		var match *Certificate
		for _, c := range s.Certs {
			if c.Cert.SerialNumber != nil && ias.SerialNumber != nil && c.Cert.SerialNumber.Cmp(ias.SerialNumber) == 0 && bytes.Equal(c.Cert.RawIssuer, ias.IssuerName.FullBytes) {
				match = c
				break
			}
		}
		if match == nil {
			return nil, fmt.Errorf("%w: signed by %s, which is none of the %d certificates in %s (%s)",
				ErrUntrustedSigner, describeSigner(ias.IssuerName.FullBytes, ias.SerialNumber, embedded), len(s.Certs), s.where(), s.list())
		}
		if signer == nil {
			signer = match
		}
	}
	// PKCS7_NOINTERN: look the signer up among the trusted certificates only.
	p7.Certificates = trusted
	p7.Content = []byte(hexString(rootHash))
	if err := verifyPKCS7(p7); err != nil {
		return nil, fmt.Errorf("%w: the signature by %s does not match root hash %s: %v", ErrBadSignature, signer, hexString(rootHash), err)
	}
	return signer, nil
}

// parsePKCS7 is pkcs7.Parse, with a recover: the signature comes from the image, and the
// library's BER and ASN.1 handling is not ours to prove panic-free.
func parsePKCS7(der []byte) (p7 *pkcs7.PKCS7, err error) {
	defer func() {
		if r := recover(); r != nil {
			p7, err = nil, fmt.Errorf("malformed PKCS#7 (parser panic: %v)", r)
		}
	}()
	return pkcs7.Parse(der)
}

// verifyPKCS7 is p7.Verify, with a recover for the same reason as parsePKCS7.
func verifyPKCS7(p7 *pkcs7.PKCS7) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed PKCS#7 (verifier panic: %v)", r)
		}
	}()
	return p7.Verify()
}

// list names the trusted certificates for messages.
func (s *TrustStore) list() string {
	var names []string
	for _, c := range s.Certs {
		names = append(names, fmt.Sprintf("%s %q", c.Path, c.Cert.Subject.String()))
	}
	return strings.Join(names, "; ")
}

// describeSigner names a signer by issuer and serial, and by subject when one of the
// certificates carried in the signature is the one named.
func describeSigner(rawIssuer []byte, serial *big.Int, embedded []*x509.Certificate) string {
	issuer := "an unreadable issuer"
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(rawIssuer, &rdn); err == nil && len(rest) == 0 {
		var name pkix.Name
		name.FillFromRDNSequence(&rdn)
		issuer = fmt.Sprintf("%q", name.String())
	}
	d := fmt.Sprintf("the certificate with issuer %s and serial %s", issuer, serial)
	if serial != nil {
		d += fmt.Sprintf(" (%#x)", serial)
	}
	for _, c := range embedded {
		if c.SerialNumber != nil && serial != nil && c.SerialNumber.Cmp(serial) == 0 && bytes.Equal(c.RawIssuer, rawIssuer) {
			d += fmt.Sprintf(" (subject %q, sha256 %x)", c.Subject.String(), sha256.Sum256(c.Raw))
		}
	}
	return d
}
