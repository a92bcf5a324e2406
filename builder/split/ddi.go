package split

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// verityBlock is the dm-verity data and hash block size (the erofs block size too).
const verityBlock = "4096"

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s*([0-9a-f]{64})\s*$`)

// ddi builds the DDI dst from an erofs file system as AuroraBoot's sysext output is laid out: the
// root partition of the architecture, its dm-verity hash partition and, with a key, the
// signature partition, the disk written by systemd-repart. The hash tree comes from veritysetup
// with a salt and superblock UUID taken from the content digest: systemd 252's repart would
// make both random, so its images never repeat. The partition UUIDs are the two halves of the
// root hash, as repart sets them and systemd finds the root hash from them.
func (s *splitter) ddi(fsImage, dst, work string, digest [sha256.Size]byte) error {
	hashImage := filepath.Join(work, "root.verity")
	salt := sha256.Sum256(append([]byte("kairos-firmware verity salt\n"), digest[:]...))
	out, err := run("veritysetup", "format", "--hash=sha256", "--data-block-size="+verityBlock, "--hash-block-size="+verityBlock,
		"--salt="+hex.EncodeToString(salt[:]), "--uuid="+uuidOf(salt), fsImage, hashImage)
	if err != nil {
		return err
	}
	m := rootHashLine.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("veritysetup format printed no root hash:\n%s", out)
	}
	rootHash := m[1]
	root := "root-" + s.opts.Release.Architecture
	parts := []string{
		// 1 MiB at least: libblkid ignores disks of 1440 KiB or less, and systemd with it
		partition(root, uuidText(rootHash[:32]), fsImage, "1M"),
		partition(root+"-verity", uuidText(rootHash[32:]), hashImage, "4K"),
	}
	if s.opts.SignKey != "" {
		sigImage := filepath.Join(work, "root.verity-sig")
		if err := s.sign(rootHash, sigImage, work); err != nil {
			return err
		}
		parts = append(parts, partition(root+"-verity-sig", "", sigImage, "4K"))
	}
	defs := filepath.Join(work, "repart.d")
	if err := os.Mkdir(defs, 0o755); err != nil {
		return err
	}
	for i, p := range parts {
		if err := os.WriteFile(filepath.Join(defs, fmt.Sprintf("%02d.conf", 10*(i+1))), []byte(p), 0o644); err != nil {
			return err
		}
	}
	_, err = run("systemd-repart", "--definitions="+defs, "--empty=create", "--size=auto", "--dry-run=no",
		"--seed="+uuidOf(digest), "--pretty=no", "--no-pager", dst)
	return err
}

// partition is a repart.d section copying file into a partition of type typ.
func partition(typ, uuid, file, minSize string) string {
	p := "[Partition]\nType=" + typ + "\nCopyBlocks=" + file + "\nSizeMinBytes=" + minSize + "\n"
	if uuid != "" {
		p += "UUID=" + uuid + "\n"
	}
	return p
}

// uuidText writes 32 hex digits as a UUID.
func uuidText(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// sign writes the signature partition systemd reads: JSON with the root hash, the signing
// certificate's SHA-256 and a detached PKCS#7 signature (no attributes, binary, as repart makes
// it with PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY) of the hex root hash, padded with NULs to a
// whole block. An RSA key signs the same way every time; ECDSA signatures differ per run.
func (s *splitter) sign(rootHash, dst, work string) error {
	certPEM, err := os.ReadFile(s.opts.SignCert)
	if err != nil {
		return fmt.Errorf("--sign-cert: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("--sign-cert %s: no PEM CERTIFICATE block", s.opts.SignCert)
	}
	fingerprint := sha256.Sum256(block.Bytes)
	content := filepath.Join(work, "roothash")
	if err := os.WriteFile(content, []byte(rootHash), 0o600); err != nil {
		return err
	}
	der := filepath.Join(work, "roothash.p7s")
	if _, err := run("openssl", "smime", "-sign", "-binary", "-noattr", "-outform", "DER", "-in", content,
		"-inkey", s.opts.SignKey, "-signer", s.opts.SignCert, "-out", der); err != nil {
		return err
	}
	sig, err := os.ReadFile(der)
	if err != nil {
		return err
	}
	data, err := json.Marshal(struct {
		RootHash    string `json:"rootHash"`
		Fingerprint string `json:"certificateFingerprint"`
		Signature   string `json:"signature"`
	}{rootHash, hex.EncodeToString(fingerprint[:]), base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return err
	}
	data = append(data, bytes.Repeat([]byte{0}, 4096-len(data)%4096)...)
	return os.WriteFile(dst, data, 0o644)
}

// signTools are what signing needs besides the format's tools.
var signTools = [][2]string{{"openssl", "openssl"}}
