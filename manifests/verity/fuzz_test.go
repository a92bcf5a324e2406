package verity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// Every parser of bytes from an image or a certificate directory is fuzzed: none may panic,
// and each allocates at most what its input holds (the superblock and the signature partition
// are bounded by their size limits, the hash tree by the hash partition).

func FuzzParseSuperblock(f *testing.F) {
	f.Add(superblockBytes(1, 1, "sha256", 4096, 4096, 20480, bytes.Repeat([]byte{7}, 32)))
	f.Add(superblockBytes(1, 1, "sha256", 512, 512, 1, nil))
	f.Add(superblockBytes(1, 0, "sha1", 333, 1<<20, 0, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		if err := p.check(); err != nil {
			t.Fatalf("accepted a superblock that fails its own check: %v", err)
		}
		if p.HashOffset < SuperblockSize || p.HashOffset%int64(p.HashBlockSize) != 0 || len(p.Salt) > maxSaltSize {
			t.Fatalf("accepted %+v", p)
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Add(sigJSON(repartRootHash, []byte{0x30, 0x03, 0x02, 0x01, 0x01}, 512))
	f.Add([]byte(`{"rootHash":"` + repartRootHash + `","signature":"MAMC\nAQE=","x":[1,{"y":null}]}`))
	f.Add([]byte(`{"rootHash":1}`))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSignature(b)
		if err != nil {
			return
		}
		if len(s.RootHash) != digestSize || len(s.PKCS7) == 0 {
			t.Fatalf("accepted %+v", s)
		}
	})
}

// FuzzOpen opens fuzzed hash devices over fixed data: Open and the reads through an opened tree
// must fail cleanly, and a tree that opens and verifies must read back exactly the data.
func FuzzOpen(f *testing.F) {
	data := make([]byte, 16*512)
	for i := range data {
		data[i] = byte(i * 7)
	}
	salt := []byte("fuzz salt")
	for _, c := range []struct{ n, dbs, hbs int }{{16, 512, 512}, {2, 4096, 4096}, {1, 512, 512}, {9, 512, 1024}} {
		dev, root := formatTree(f, data[:c.n*c.dbs], uint32(c.dbs), uint32(c.hbs), salt)
		f.Add(dev, root)
	}
	f.Fuzz(func(t *testing.T, dev, root []byte) {
		tr, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller)
		if err != nil {
			return
		}
		buf := make([]byte, tr.Size()+10)
		n, rerr := tr.ReadAt(buf, 0)
		if verr := tr.VerifyData(); verr == nil {
			if int64(n) != tr.Size() || !bytes.Equal(buf[:n], data[:n]) {
				t.Fatalf("verified tree read %d bytes (%v), want the %d data bytes", n, rerr, tr.Size())
			}
		}
	})
}

// fuzzSigner is a key and certificate made with Go, for signatures in the seed corpus.
func fuzzSigner(f *testing.F) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "fuzz"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	return cert, key
}

// FuzzVerifySignature feeds fuzzed PKCS#7 DER to the verifier; the seed is a valid detached,
// attribute-less signature of the root hash by the trusted key.
func FuzzVerifySignature(f *testing.F) {
	cert, key := fuzzSigner(f)
	rootHash := mustHex(f, repartRootHash)
	sd, err := pkcs7.NewSignedData([]byte(hexString(rootHash)))
	if err != nil {
		f.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.SignWithoutAttr(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		f.Fatal(err)
	}
	sd.Detach()
	good, err := sd.Finish()
	if err != nil {
		f.Fatal(err)
	}
	store := NewTrustStore(cert)
	if _, err := store.Verify(rootHash, good); err != nil {
		f.Fatalf("seed signature: %v", err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		signer, err := store.Verify(rootHash, der)
		if err == nil && signer != store.Certs[0] {
			t.Fatalf("verified with a certificate that is not in the store: %v", signer)
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	cert, _ := fuzzSigner(f)
	f.Add(cert.Raw)
	f.Add(pemOf(cert))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseCertificate(b)
	})
}
