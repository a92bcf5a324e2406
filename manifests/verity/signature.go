package verity

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxSignatureSize is the largest signature partition read: systemd refuses a larger one
// ("Signature data cannot possibly be larger than 4M", dissected_image_load_verity_sig_partition).
const MaxSignatureSize = 4 << 20

// Signature is the content of a DDI's `-verity-sig` partition: the JSON object systemd-repart
// writes (partition_format_verity_sig in src/repart/repart.c), NUL-padded to the partition size.
type Signature struct {
	// RootHash is the root hash the signature is for ("rootHash", hex).
	RootHash []byte
	// CertificateFingerprint is the SHA-256 of the signing certificate's DER as the image
	// builder claims it ("certificateFingerprint", hex, optional). It is not authenticated and
	// is used only in messages; systemd does not use it either.
	CertificateFingerprint []byte
	// PKCS7 is the detached DER PKCS#7 signature of the lowercase hex root hash ("signature",
	// base64).
	PKCS7 []byte
}

// ReadSignature reads a signature partition of size bytes and parses it.
func ReadSignature(r io.ReaderAt, size int64) (*Signature, error) {
	if size > MaxSignatureSize {
		return nil, fmt.Errorf("signature partition: %d bytes, at most %d (systemd refuses larger ones)", size, MaxSignatureSize)
	}
	if size <= 0 {
		return nil, fmt.Errorf("signature partition: %d bytes", size)
	}
	b := make([]byte, size)
	if err := readFull(r, b, 0); err != nil {
		return nil, fmt.Errorf("signature partition: %w", err)
	}
	return ParseSignature(b)
}

// ParseSignature parses the content of a signature partition as systemd does: the JSON text
// ends at the first NUL byte, and every byte after it must be NUL too; the JSON is one object
// with a string "rootHash" (hex, 32 bytes for sha256) and a string "signature" (base64, not
// empty); other fields are ignored. It does not verify the signature (TrustStore.Verify does).
func ParseSignature(b []byte) (*Signature, error) {
	if len(b) > MaxSignatureSize {
		return nil, fmt.Errorf("signature partition: %d bytes, at most %d", len(b), MaxSignatureSize)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		for j, c := range b[i:] {
			if c != 0 {
				return nil, fmt.Errorf("signature partition: byte %d is %#02x after the NUL padding started at byte %d", i+j, c, i)
			}
		}
		b = b[:i]
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("signature partition: the JSON is a %s, want an object", typeErr.Value)
		}
		return nil, fmt.Errorf("signature partition: not JSON: %v", err)
	}
	if fields == nil {
		return nil, errors.New("signature partition: the JSON is null, want an object")
	}
	s := &Signature{}
	rh, err := stringField(fields, "rootHash", true)
	if err != nil {
		return nil, err
	}
	if s.RootHash, err = hex.DecodeString(rh); err != nil {
		return nil, fmt.Errorf("signature partition: rootHash %q is not hex: %v", clip(rh), err)
	}
	if len(s.RootHash) != digestSize {
		return nil, fmt.Errorf("signature partition: rootHash has %d bytes, want %d (%s)", len(s.RootHash), digestSize, Algorithm)
	}
	sig, err := stringField(fields, "signature", true)
	if err != nil {
		return nil, err
	}
	// systemd's unbase64mem() skips whitespace; repart writes none.
	sig = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, sig)
	if s.PKCS7, err = base64.StdEncoding.DecodeString(sig); err != nil {
		return nil, fmt.Errorf("signature partition: signature is not base64: %v", err)
	}
	if len(s.PKCS7) == 0 {
		return nil, errors.New("signature partition: signature is empty")
	}
	// Informational only: a missing or malformed fingerprint is ignored, as systemd ignores it.
	if fp, err := stringField(fields, "certificateFingerprint", false); err == nil && fp != "" {
		if b, err := hex.DecodeString(fp); err == nil {
			s.CertificateFingerprint = b
		}
	}
	return s, nil
}

// stringField returns the string field name of a JSON object.
func stringField(fields map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := fields[name]
	if !ok {
		if required {
			return "", fmt.Errorf("signature partition: the JSON object has no %q field", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("signature partition: %q is %s, want a string", name, clip(string(raw)))
	}
	return s, nil
}

// clip shortens a value for a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
