package verity

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The UUIDs and root hash systemd-repart 252 printed for one DDI (`--json=pretty`): the data
// partition's UUID is the first half of the root hash, the hash partition's the second.
const (
	repartDataUUID = "0b8de380-636b-9a03-ca56-441912f8e47f"
	repartHashUUID = "6794c56d-77f8-aedd-2f3d-2330b67b4d7f"
	repartRootHash = "0b8de380636b9a03ca56441912f8e47f6794c56d77f8aedd2f3d2330b67b4d7f"
)

func TestRootHashFromUUIDs(t *testing.T) {
	rh, err := RootHashFromUUIDs(repartDataUUID, strings.ToUpper(repartHashUUID))
	if err != nil || hexString(rh) != repartRootHash {
		t.Fatalf("RootHashFromUUIDs = %x, %v; want %s", rh, err, repartRootHash)
	}
	for _, c := range []struct{ d, h, want string }{
		{"0b8de380636b9a03ca56441912f8e47f", repartHashUUID, "want the form"},
		{repartDataUUID, "6794c56d-77f8-aedd-2f3d-2330b67b4dzz", "hash partition UUID"},
		{"00000000-0000-0000-0000-000000000000", repartHashUUID, "null UUID"},
	} {
		if _, err := RootHashFromUUIDs(c.d, c.h); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RootHashFromUUIDs(%q, %q) = %v, want %q", c.d, c.h, err, c.want)
		}
	}
}

func TestCheckUUIDs(t *testing.T) {
	rh := mustHex(t, repartRootHash)
	if err := CheckUUIDs(rh, SourceSignature, repartDataUUID, repartHashUUID); err != nil {
		t.Fatal(err)
	}
	if err := CheckUUIDs(rh, SourceSignature, "", ""); err != nil {
		t.Fatalf("unknown UUIDs: %v", err)
	}
	err := CheckUUIDs(rh, SourceSignature, repartDataUUID, "6794c56d-77f8-aedd-2f3d-2330b67b4d70")
	want := "hash partition UUID 6794c56d-77f8-aedd-2f3d-2330b67b4d70 is not the last half of the root hash from the signature (6794c56d-77f8-aedd-2f3d-2330b67b4d7f)"
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckUUIDs = %v, want %q", err, want)
	}
	if err := CheckUUIDs(flip(rh, 3), SourceCaller, repartDataUUID, ""); err == nil || !strings.Contains(err.Error(), "data partition UUID") {
		t.Fatalf("CheckUUIDs data: %v", err)
	}
}

// sigJSON is a signature partition as systemd-repart writes it, padded to size.
func sigJSON(rootHash string, sig []byte, size int) []byte {
	s := fmt.Sprintf(`{"rootHash":%q,"certificateFingerprint":"633697970b75be09e76e2455c3827b427c3473866b431fec59c368a43cb6b36d","signature":%q}`,
		rootHash, base64.StdEncoding.EncodeToString(sig))
	b := []byte(s)
	if size > len(b) {
		b = append(b, make([]byte, size-len(b))...)
	}
	return b
}

func TestParseSignature(t *testing.T) {
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	s, err := ParseSignature(sigJSON(repartRootHash, der, 16384))
	if err != nil {
		t.Fatal(err)
	}
	if hexString(s.RootHash) != repartRootHash || !bytes.Equal(s.PKCS7, der) || hexString(s.CertificateFingerprint) != "633697970b75be09e76e2455c3827b427c3473866b431fec59c368a43cb6b36d" {
		t.Fatalf("parsed %+v", s)
	}
	// Upper-case hex and whitespace in the base64 are what systemd's parsers accept too; no
	// padding at all and no fingerprint are fine.
	if s, err := ParseSignature([]byte(`{"rootHash":"` + strings.ToUpper(repartRootHash) + `","signature":"MAMC\nAQE="}`)); err != nil || !bytes.Equal(s.PKCS7, der) || s.CertificateFingerprint != nil {
		t.Fatalf("variant: %+v, %v", s, err)
	}
	if _, err := ReadSignature(bytes.NewReader(sigJSON(repartRootHash, der, 4096)), 4096); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"garbage after padding", append(sigJSON(repartRootHash, der, 1000), 'x'), "byte 1000 is 0x78 after the NUL padding started at byte"},
		{"empty", nil, "not JSON"},
		{"array", []byte(`[1]`), "the JSON is a array, want an object"},
		{"null", []byte(`null`), "the JSON is null"},
		{"trailing", []byte(`{"rootHash":"` + repartRootHash + `","signature":"MAMCAQE="} x`), "not JSON"},
		{"no rootHash", []byte(`{"signature":"MAMCAQE="}`), `no "rootHash" field`},
		{"no signature", []byte(`{"rootHash":"` + repartRootHash + `"}`), `no "signature" field`},
		{"rootHash number", []byte(`{"rootHash":12,"signature":"MAMCAQE="}`), `"rootHash" is 12, want a string`},
		{"rootHash odd", []byte(`{"rootHash":"abc","signature":"MAMCAQE="}`), `rootHash "abc" is not hex`},
		{"rootHash short", []byte(`{"rootHash":"abcd","signature":"MAMCAQE="}`), "rootHash has 2 bytes, want 32"},
		{"signature bad", []byte(`{"rootHash":"` + repartRootHash + `","signature":"!!"}`), "signature is not base64"},
		{"signature empty", []byte(`{"rootHash":"` + repartRootHash + `","signature":""}`), "signature is empty"},
	} {
		if _, err := ParseSignature(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := ReadSignature(bytes.NewReader(nil), MaxSignatureSize+1); err == nil || !strings.Contains(err.Error(), "at most 4194304") {
		t.Errorf("oversized partition: %v", err)
	}
}
