package verity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests/erofs"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// pki is a throwaway CA, a signer it issued, an unrelated self-signed certificate, and an
// impostor: a certificate with the signer's issuer name and serial number but another key.
type pki struct {
	dir                                   string
	caCrt, signerCrt, signerKey, otherCrt string
	impostorCrt, impostorKey              string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ssl := testkernel.Tool(t, "openssl")
	dir := t.TempDir()
	p := &pki{dir: dir}
	f := func(n string) string { return filepath.Join(dir, n) }
	req := func(args ...string) {
		run(t, ssl, append([]string{"req", "-batch", "-nodes", "-days", "3"}, args...)...)
	}
	req("-x509", "-newkey", "rsa:2048", "-keyout", f("ca.key"), "-out", f("ca.crt"), "-subj", "/CN=Kairos Test CA")
	req("-newkey", "rsa:2048", "-keyout", f("signer.key"), "-out", f("signer.csr"), "-subj", "/CN=Kairos Test Signer")
	run(t, ssl, "x509", "-req", "-in", f("signer.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-set_serial", "0x4b46", "-days", "3", "-out", f("signer.crt"))
	req("-x509", "-newkey", "rsa:2048", "-keyout", f("other.key"), "-out", f("other.crt"), "-subj", "/CN=Someone Else")
	req("-x509", "-newkey", "rsa:2048", "-keyout", f("fakeca.key"), "-out", f("fakeca.crt"), "-subj", "/CN=Kairos Test CA")
	req("-newkey", "rsa:2048", "-keyout", f("impostor.key"), "-out", f("impostor.csr"), "-subj", "/CN=Kairos Test Signer")
	run(t, ssl, "x509", "-req", "-in", f("impostor.csr"), "-CA", f("fakeca.crt"), "-CAkey", f("fakeca.key"), "-set_serial", "0x4b46", "-days", "3", "-out", f("impostor.crt"))
	p.caCrt, p.signerCrt, p.signerKey, p.otherCrt = f("ca.crt"), f("signer.crt"), f("signer.key"), f("other.crt")
	p.impostorCrt, p.impostorKey = f("impostor.crt"), f("impostor.key")
	return p
}

// sign signs the lowercase hex root hash as systemd-repart does: PKCS7_sign with
// PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY, DER; `openssl smime -sign` is detached by default.
func (p *pki) sign(t testing.TB, root []byte, crt, key string) []byte {
	t.Helper()
	in := writeFile(t, t.TempDir(), "roothash", []byte(hexString(root)))
	out := in + ".p7s"
	run(t, testkernel.Tool(t, "openssl"), "smime", "-sign", "-in", in, "-signer", crt, "-inkey", key, "-binary", "-noattr", "-outform", "DER", "-out", out)
	return readFile(t, out)
}

// opensslVerifies runs what systemd's validate_signature_userspace() runs, PKCS7_verify with
// PKCS7_NOINTERN|PKCS7_NOVERIFY against the given certificates, through the openssl command:
// the differential oracle for TrustStore.Verify.
func opensslVerifies(t testing.TB, root, der []byte, certs ...string) bool {
	t.Helper()
	dir := t.TempDir()
	in := writeFile(t, dir, "roothash", []byte(hexString(root)))
	sig := writeFile(t, dir, "sig.p7s", der)
	var bundle []byte
	for _, c := range certs {
		bundle = append(bundle, readFile(t, c)...)
	}
	certfile := writeFile(t, dir, "certs.pem", bundle)
	err := exec.Command(testkernel.Tool(t, "openssl"), "smime", "-verify", "-binary", "-inform", "DER", "-in", sig,
		"-content", in, "-certfile", certfile, "-nointern", "-noverify", "-out", os.DevNull).Run()
	return err == nil
}

// trustDir makes a root whose /run/verity.d holds the given files.
func trustDir(t testing.TB, files map[string][]byte) (*hostfs.Root, *TrustStore) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "run", "verity.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		writeFile(t, filepath.Join(dir, "run", "verity.d"), name, b)
	}
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return root, LoadTrustStore(root, DefaultCertDirs)
}

// testImage is an erofs file system with firmware, its veritysetup hash device and root hash.
type testImage struct {
	data, hash, root []byte
	firmware         map[string][]byte
}

func newTestImage(t testing.TB) *testImage {
	t.Helper()
	mkfs := testkernel.Tool(t, "mkfs.erofs")
	dir := t.TempDir()
	img := &testImage{firmware: map[string][]byte{
		"usr/lib/firmware/rtw88/rtw8821a_fw.bin": randomBytes(t, 32768),
		"usr/lib/firmware/test/small.bin":        []byte("kairos-firmware test blob 0123456789"),
	}}
	for p, b := range img.firmware {
		writeFile(t, filepath.Join(dir, "tree"), p, b)
	}
	writeFile(t, filepath.Join(dir, "tree"), "usr/lib/extension-release.d/extension-release.fw", []byte("ID=_any\n"))
	fsPath := filepath.Join(dir, "fs.erofs")
	run(t, mkfs, "-zlz4hc", fsPath, filepath.Join(dir, "tree"))
	hashPath, root := veritysetupFormat(t, fsPath)
	img.data, img.hash, img.root = readFile(t, fsPath), readFile(t, hashPath), root
	return img
}

// parts are the image's partitions as a GPT reader would hand them over, with the UUIDs
// systemd-repart derives from the root hash.
func (img *testImage) parts(sig []byte) Parts {
	p := Parts{
		Data: bytes.NewReader(img.data), DataSize: int64(len(img.data)), DataUUID: formatUUID(img.root[:16]),
		Hash: bytes.NewReader(img.hash), HashSize: int64(len(img.hash)), HashUUID: formatUUID(img.root[16:]),
	}
	if sig != nil {
		p.Sig, p.SigSize = bytes.NewReader(sig), int64(len(sig))
	}
	return p
}

// sigPartition is the signature partition systemd-repart writes: JSON, NUL-padded to 16 KiB.
func sigPartition(t testing.TB, root, der []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{"rootHash": hexString(root), "signature": base64.StdEncoding.EncodeToString(der)})
	if err != nil {
		t.Fatal(err)
	}
	return append(b, make([]byte, 16384-len(b))...)
}

// readFirmware reads every firmware file through an erofs reader over r.
func (img *testImage) readFirmware(t testing.TB, r io.ReaderAt, size int64) error {
	t.Helper()
	fsys, err := erofs.Open(r, size)
	if err != nil {
		return err
	}
	for p, want := range img.firmware {
		got, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: wrong content", p)
		}
	}
	return nil
}

func TestSignedImage(t *testing.T) {
	k := newPKI(t)
	img := newTestImage(t)
	der := k.sign(t, img.root, k.signerCrt, k.signerKey)
	sig := sigPartition(t, img.root, der)
	signerPEM := readFile(t, k.signerCrt)

	t.Run("good", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM, "other.crt": readFile(t, k.otherCrt)})
		ev, tree := Inspect(img.parts(sig), Options{Trust: trust})
		if !ev.VerityOK() || !ev.SignatureOK() || tree == nil {
			t.Fatalf("evidence: %s", &ev)
		}
		if ev.RootHashSource != SourceSignature || ev.Signer.Path != "/run/verity.d/db.crt" || ev.Signer.Cert.Subject.CommonName != "Kairos Test Signer" {
			t.Fatalf("evidence: %s", &ev)
		}
		if err := img.readFirmware(t, tree, tree.Size()); err != nil {
			t.Fatal(err)
		}
		if !opensslVerifies(t, img.root, der, k.signerCrt, k.otherCrt) {
			t.Error("openssl refuses what was accepted")
		}
		for _, policy := range []string{PolicyAuto, PolicyRequired, PolicyIgnore} {
			for _, uki := range []bool{false, true} {
				if err := Decide(policy, uki, ev); err != nil {
					t.Errorf("Decide(%s, uki=%v) = %v", policy, uki, err)
				}
			}
		}
		// Full verification agrees.
		if ev, _ := Inspect(img.parts(sig), Options{Trust: trust, Full: true}); !ev.VerityOK() || !ev.SignatureOK() {
			t.Fatalf("full: %s", &ev)
		}
	})

	t.Run("DER and .pem files", func(t *testing.T) {
		block := strings.TrimSpace(string(signerPEM))
		block = strings.TrimPrefix(block, "-----BEGIN CERTIFICATE-----")
		block = strings.TrimSuffix(block, "-----END CERTIFICATE-----")
		derCert, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(block, "\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"db.der": derCert, "db.pem": signerPEM} {
			_, trust := trustDir(t, map[string][]byte{name: b})
			if ev, _ := Inspect(img.parts(sig), Options{Trust: trust}); !ev.SignatureOK() || ev.Signer.Path != "/run/verity.d/"+name {
				t.Errorf("%s: %s", name, &ev)
			}
		}
	})

	// Refusals with the error they must wrap and words the message must have.
	refused := func(t *testing.T, ev Evidence, target error, words ...string) {
		t.Helper()
		if ev.SignatureOK() {
			t.Fatalf("signature accepted: %s", &ev)
		}
		if !errors.Is(ev.SignatureErr, target) {
			t.Fatalf("SignatureErr = %v, want %v", ev.SignatureErr, target)
		}
		for _, w := range words {
			if !strings.Contains(ev.SignatureErr.Error(), w) {
				t.Errorf("SignatureErr %q lacks %q", ev.SignatureErr, w)
			}
		}
		if !ev.VerityOK() {
			t.Fatalf("verity should still pass: %v", ev.VerityErr)
		}
		for _, c := range []struct {
			policy string
			uki    bool
		}{{PolicyAuto, false}, {PolicyAuto, true}, {PolicyRequired, false}, {PolicyRequired, true}} {
			err := Decide(c.policy, c.uki, ev)
			var r *Refusal
			if !errors.As(err, &r) || !errors.Is(err, target) {
				t.Errorf("Decide(%s, uki=%v) = %v, want a refusal wrapping %v", c.policy, c.uki, err, target)
			}
		}
		if err := Decide(PolicyIgnore, false, ev); err != nil {
			t.Errorf("ignore: %v", err)
		}
	}

	t.Run("wrong certificate", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"other.crt": readFile(t, k.otherCrt)})
		ev, _ := Inspect(img.parts(sig), Options{Trust: trust})
		refused(t, ev, ErrUntrustedSigner, `issuer "CN=Kairos Test CA" and serial 19270`, `subject "CN=Kairos Test Signer"`, `/run/verity.d/other.crt "CN=Someone Else"`)
		if opensslVerifies(t, img.root, der, k.otherCrt) {
			t.Error("openssl accepts what was refused")
		}
	})
	t.Run("CA only, no chain building", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"ca.crt": readFile(t, k.caCrt)})
		ev, _ := Inspect(img.parts(sig), Options{Trust: trust})
		refused(t, ev, ErrUntrustedSigner)
		if opensslVerifies(t, img.root, der, k.caCrt) {
			t.Error("openssl accepts what was refused")
		}
	})
	t.Run("impostor with the signer's issuer and serial", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		fakeDER := k.sign(t, img.root, k.impostorCrt, k.impostorKey)
		ev, _ := Inspect(img.parts(sigPartition(t, img.root, fakeDER)), Options{Trust: trust})
		refused(t, ev, ErrBadSignature, "does not match root hash")
		if opensslVerifies(t, img.root, fakeDER, k.signerCrt) {
			t.Error("openssl accepts what was refused")
		}
	})
	t.Run("no certificates (a GRUB boot)", func(t *testing.T) {
		_, trust := trustDir(t, nil)
		ev, _ := Inspect(img.parts(sig), Options{Trust: trust})
		refused(t, ev, ErrNoTrustedCerts, "/run/verity.d")
		err := Decide(PolicyAuto, false, ev)
		if err == nil || !strings.Contains(err.Error(), "kairos#5004") {
			t.Errorf("auto, non-UKI: %v", err)
		}
	})
	// OpenSSL's PKCS7_verify (systemd's verifier) accepts a SHA-1 digest; so does this one.
	t.Run("SHA-1 digest", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		ssl := testkernel.Tool(t, "openssl")
		in := writeFile(t, t.TempDir(), "roothash", []byte(hexString(img.root)))
		run(t, ssl, "smime", "-sign", "-md", "sha1", "-in", in, "-signer", k.signerCrt, "-inkey", k.signerKey, "-binary", "-noattr", "-outform", "DER", "-out", in+".p7s")
		run(t, ssl, "smime", "-verify", "-binary", "-inform", "DER", "-in", in+".p7s", "-content", in, "-certfile", k.signerCrt, "-nointern", "-noverify", "-out", os.DevNull)
		if ev, _ := Inspect(img.parts(sigPartition(t, img.root, readFile(t, in+".p7s"))), Options{Trust: trust}); !ev.SignatureOK() {
			t.Fatalf("%s", ev)
		}
	})
	t.Run("signature over another root hash", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		other := flip(img.root, 31)
		// The JSON says the image's root hash, the PKCS#7 signs another one.
		ev, _ := Inspect(img.parts(sigPartition(t, img.root, k.sign(t, other, k.signerCrt, k.signerKey))), Options{Trust: trust})
		refused(t, ev, ErrBadSignature)
	})

	t.Run("tampered signature bytes", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		// Flip the last byte of the PKCS#7 (inside the RSA signature value).
		bad := sigPartition(t, img.root, flip(der, len(der)-1))
		ev, _ := Inspect(img.parts(bad), Options{Trust: trust})
		refused(t, ev, ErrBadSignature)
		// A flipped base64 character in the partition itself.
		raw := bytes.Clone(sig)
		i := bytes.LastIndex(raw, []byte(`"}`)) - 10
		raw[i] = 'A' // another base64 letter
		if sig[i] == 'A' {
			raw[i] = 'B'
		}
		ev, _ = Inspect(img.parts(raw), Options{Trust: trust})
		if ev.SignatureOK() || ev.SignatureErr == nil {
			t.Fatalf("tampered base64 accepted: %s", &ev)
		}
	})

	t.Run("tampered rootHash in the signature partition", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		other := flip(img.root, 31)
		bad := sigPartition(t, other, der)
		ev, _ := Inspect(img.parts(bad), Options{Trust: trust})
		if !errors.Is(ev.VerityErr, ErrCorrupt) || !strings.Contains(ev.VerityErr.Error(), "hash partition UUID") {
			t.Fatalf("with UUIDs: %s", &ev)
		}
		p := img.parts(bad)
		p.DataUUID, p.HashUUID = "", ""
		ev, _ = Inspect(p, Options{Trust: trust})
		want := fmt.Sprintf("root hash mismatch: the signature covers %x, the hash partition gives %x", other, img.root)
		if !errors.Is(ev.VerityErr, ErrCorrupt) || !strings.Contains(ev.VerityErr.Error(), want) {
			t.Fatalf("without UUIDs: %v, want %q", ev.VerityErr, want)
		}
		for _, policy := range []string{PolicyAuto, PolicyRequired, PolicyIgnore} {
			if err := Decide(policy, false, ev); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
				t.Errorf("Decide(%s) = %v", policy, err)
			}
		}
	})

	t.Run("tampered data", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		at := bytes.Index(img.data, img.firmware["usr/lib/firmware/test/small.bin"])
		if at < 0 {
			t.Fatal("firmware bytes not found in the erofs image (compressed?)")
		}
		bad := *img
		bad.data = flip(img.data, at)
		ev, tree := Inspect(bad.parts(sig), Options{Trust: trust})
		if !ev.VerityOK() || !ev.SignatureOK() {
			t.Fatalf("lazy: the tree and signature are intact: %s", &ev)
		}
		var ce *CorruptionError
		if err := bad.readFirmware(t, tree, tree.Size()); !errors.As(err, &ce) || ce.Offset != int64(at)/4096*4096 {
			t.Fatalf("reading the firmware through the tree: %v", err)
		}
		ev, _ = Inspect(bad.parts(sig), Options{Trust: trust, Full: true})
		if !errors.As(ev.VerityErr, &ce) {
			t.Fatalf("full: %s", &ev)
		}
		for _, policy := range []string{PolicyAuto, PolicyRequired, PolicyIgnore} {
			if err := Decide(policy, true, ev); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "is corrupt: hash tree says") {
				t.Errorf("Decide(%s) = %v", policy, err)
			}
		}
	})

	t.Run("tampered hash partition", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		bad := *img
		bad.hash = flip(img.hash, 4096+40) // the top (only) hash block, second entry
		ev, tree := Inspect(bad.parts(sig), Options{Trust: trust})
		if tree != nil || !errors.Is(ev.VerityErr, ErrCorrupt) || !strings.Contains(ev.VerityErr.Error(), "root hash mismatch") {
			t.Fatalf("%s", &ev)
		}
		if err := Decide(PolicyIgnore, false, ev); err == nil {
			t.Error("ignore accepted a tampered hash partition")
		}
	})

	t.Run("caller's root hash", func(t *testing.T) {
		_, trust := trustDir(t, map[string][]byte{"db.crt": signerPEM})
		if ev, _ := Inspect(img.parts(sig), Options{Trust: trust, RootHash: img.root}); !ev.VerityOK() || ev.RootHashSource != SourceCaller || !ev.SignatureOK() {
			t.Fatalf("%s", &ev)
		}
		other := flip(img.root, 0)
		ev, _ := Inspect(img.parts(sig), Options{Trust: trust, RootHash: other})
		want := fmt.Sprintf("root hash mismatch: the caller gives %x, the signature covers %x", other, img.root)
		if ev.VerityErr == nil || !strings.Contains(ev.VerityErr.Error(), want) {
			t.Fatalf("%v, want %q", ev.VerityErr, want)
		}
	})
}

// TestUnsignedImage: verity without a signature, the root hash from the partition UUIDs.
func TestUnsignedImage(t *testing.T) {
	img := newTestImage(t)
	ev, tree := Inspect(img.parts(nil), Options{})
	if !ev.VerityOK() || ev.Signed || ev.RootHashSource != SourceUUIDs || tree == nil {
		t.Fatalf("%s", &ev)
	}
	if err := img.readFirmware(t, tree, tree.Size()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		policy string
		uki    bool
		ok     bool
	}{
		{PolicyAuto, false, true}, {PolicyIgnore, false, true}, {PolicyIgnore, true, true},
		{PolicyAuto, true, false}, {PolicyRequired, false, false}, {PolicyRequired, true, false},
	} {
		err := Decide(c.policy, c.uki, ev)
		if c.ok != (err == nil) {
			t.Errorf("Decide(%s, uki=%v) = %v", c.policy, c.uki, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "verity without a signature never passes a signed-only policy (kairos#4425)")) {
			t.Errorf("Decide(%s, uki=%v): reason %v", c.policy, c.uki, err)
		}
	}

	p := img.parts(nil)
	p.HashUUID = formatUUID(flip(img.root, 20)[16:])
	ev, _ = Inspect(p, Options{})
	if !errors.Is(ev.VerityErr, ErrCorrupt) || !strings.Contains(ev.VerityErr.Error(), "root hash mismatch: the partition UUIDs give") {
		t.Fatalf("wrong UUID: %s", &ev)
	}
	p.DataUUID, p.HashUUID = "", ""
	if ev, _ = Inspect(p, Options{}); ev.VerityErr == nil || !strings.Contains(ev.VerityErr.Error(), "no root hash") {
		t.Fatalf("no root hash: %s", &ev)
	}
	p.HashUUID, p.DataUUID = "nonsense", formatUUID(img.root[:16])
	if ev, _ = Inspect(p, Options{}); ev.VerityErr == nil || !strings.Contains(ev.VerityErr.Error(), `UUID "nonsense"`) {
		t.Fatalf("bad UUID: %s", &ev)
	}
}

// TestSignatureWithoutHashPartition: a signature partition alone gives no verity.
func TestSignatureWithoutHashPartition(t *testing.T) {
	rh := mustHex(t, repartRootHash)
	p := Parts{Data: bytes.NewReader(make([]byte, 4096)), DataSize: 4096, Sig: bytes.NewReader(sigJSON(repartRootHash, []byte{1}, 512)), SigSize: 512}
	ev, tree := Inspect(p, Options{RootHash: rh})
	if ev.Verity || tree != nil || !ev.Signed || ev.SignatureErr == nil || !strings.Contains(ev.SignatureErr.Error(), "no hash partition") {
		t.Fatalf("%s", &ev)
	}
	if err := Decide(PolicyAuto, false, ev); err == nil || !strings.Contains(err.Error(), "no hash partition") {
		t.Fatalf("Decide: %v", err)
	}
	// A malformed signature partition next to a hash partition is a verity failure: systemd
	// cannot dissect the image.
	p.Hash, p.HashSize = bytes.NewReader(make([]byte, 4096)), 4096
	p.Sig, p.SigSize = bytes.NewReader([]byte("{not json")), 9
	if ev, _ = Inspect(p, Options{}); ev.VerityErr == nil || !strings.Contains(ev.VerityErr.Error(), "not JSON") {
		t.Fatalf("malformed signature: %s", &ev)
	}
}
