package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// TestRepartDDI reads a DDI built by systemd-repart itself, the way AuroraBoot builds sysext
// images: a root partition (here an erofs file system copied in with CopyBlocks=, since
// systemd 252's repart cannot make erofs itself) with Verity=data, its Verity=hash partition
// and a Verity=signature partition signed with --private-key/--certificate. The partitions are
// read both from repart's split files and as sections of the whole image, at the offsets repart
// reports, as the GPT reader will hand them over.
func TestRepartDDI(t *testing.T) {
	repart := testkernel.Tool(t, "systemd-repart")
	k := newPKI(t)
	mkfs := testkernel.Tool(t, "mkfs.erofs")
	dir := t.TempDir()
	img := &testImage{firmware: map[string][]byte{"usr/lib/firmware/vendor/fw.bin": randomBytes(t, 100000)}}
	for p, b := range img.firmware {
		writeFile(t, filepath.Join(dir, "tree"), p, b)
	}
	fsPath := filepath.Join(dir, "fs.erofs")
	run(t, mkfs, fsPath, filepath.Join(dir, "tree"))
	defs := filepath.Join(dir, "defs")
	writeFile(t, defs, "10-root.conf", []byte("[Partition]\nType=root\nCopyBlocks="+fsPath+"\nVerity=data\nVerityMatchKey=root\n"))
	writeFile(t, defs, "20-root-verity.conf", []byte("[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=root\nSizeMinBytes=2M\n"))
	writeFile(t, defs, "30-root-verity-sig.conf", []byte("[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=root\n"))
	image := filepath.Join(dir, "fw.raw")
	// The signing certificate is self-signed, as AuroraBoot's db certificate is.
	signer, key := k.otherCrt, filepath.Join(k.dir, "other.key")
	out := run(t, repart, "--definitions="+defs, "--empty=create", "--size=auto", "--dry-run=no",
		"--private-key="+key, "--certificate="+signer, "--json=short", "--split=yes", image)
	var parts []struct {
		Type     string  `json:"type"`
		UUID     string  `json:"uuid"`
		Offset   int64   `json:"offset"`
		Size     int64   `json:"raw_size"`
		RootHash *string `json:"roothash"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &parts); err != nil {
		t.Fatalf("repart's JSON: %v\n%s", err, out)
	}
	byType := map[string]int{}
	rootHash := ""
	for i, p := range parts {
		kind := "data"
		switch {
		case strings.HasSuffix(p.Type, "-verity-sig"):
			kind = "sig"
		case strings.HasSuffix(p.Type, "-verity"):
			kind = "hash"
			if p.RootHash != nil {
				rootHash = *p.RootHash
			}
		}
		byType[kind] = i
	}
	if len(byType) != 3 || rootHash == "" {
		t.Fatalf("repart made no verity DDI (needs systemd 252 or later):\n%s", out)
	}
	data, hash, sigp := parts[byType["data"]], parts[byType["hash"]], parts[byType["sig"]]

	split := func(typ string) []byte { return readFile(t, strings.TrimSuffix(image, ".raw")+"."+typ+".raw") }
	whole, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	section := func(p int) *io.SectionReader {
		return io.NewSectionReader(whole, parts[p].Offset, parts[p].Size)
	}
	fromSplit := Parts{
		Data: bytes.NewReader(split(data.Type)), DataSize: data.Size, DataUUID: data.UUID,
		Hash: bytes.NewReader(split(hash.Type)), HashSize: hash.Size, HashUUID: hash.UUID,
		Sig: bytes.NewReader(split(sigp.Type)), SigSize: sigp.Size,
	}
	fromImage := Parts{
		Data: section(byType["data"]), DataSize: data.Size, DataUUID: data.UUID,
		Hash: section(byType["hash"]), HashSize: hash.Size, HashUUID: hash.UUID,
		Sig: section(byType["sig"]), SigSize: sigp.Size,
	}
	_, trust := trustDir(t, map[string][]byte{"db.crt": readFile(t, signer)})
	for name, p := range map[string]Parts{"split files": fromSplit, "image sections": fromImage} {
		ev, tree := Inspect(p, Options{Trust: trust, Full: true})
		if !ev.VerityOK() || !ev.SignatureOK() || ev.RootHashSource != SourceSignature || hexString(ev.RootHash) != rootHash {
			t.Fatalf("%s: %s (repart's root hash %s)", name, &ev, rootHash)
		}
		if err := img.readFirmware(t, tree, tree.Size()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := Decide(PolicyAuto, true, ev); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	// The signature partition, as repart wrote it.
	sig, err := ReadSignature(fromImage.Sig, fromImage.SigSize)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertificate(readFile(t, signer))
	if err != nil {
		t.Fatal(err)
	}
	if fp := sha256.Sum256(cert.Raw); sig.CertificateFingerprint != nil && !bytes.Equal(sig.CertificateFingerprint, fp[:]) {
		t.Errorf("certificateFingerprint %x, the certificate's SHA-256 is %x", sig.CertificateFingerprint, fp)
	}

	// Without the signature partition, the root hash comes from repart's partition UUIDs.
	unsigned := fromImage
	unsigned.Sig = nil
	ev, _ := Inspect(unsigned, Options{})
	if !ev.VerityOK() || ev.RootHashSource != SourceUUIDs || hexString(ev.RootHash) != rootHash {
		t.Fatalf("from the UUIDs: %s", &ev)
	}
	if err := Decide(PolicyAuto, true, ev); err == nil {
		t.Error("an unsigned DDI passed auto on a UKI boot")
	}

	// The policy a GRUB boot applies to the signed image when /run/verity.d is empty.
	_, empty := trustDir(t, nil)
	ev, _ = Inspect(fromImage, Options{Trust: empty})
	if err := Decide(PolicyAuto, false, ev); err == nil || !strings.Contains(err.Error(), "kairos#5004") {
		t.Errorf("signed image, no certificates, auto on a non-UKI boot: %v", err)
	}
}
