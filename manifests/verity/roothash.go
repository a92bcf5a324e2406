package verity

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseUUID reads a UUID in its canonical text form (8-4-4-4-12 hex digits, either case) into
// its 16 bytes in text order, which is the order systemd's sd_id128_t keeps them in and the
// order the root hash halves are compared in. (GPT stores the first three fields of a partition
// UUID little endian on disk; a GPT reader must give the text form, as blkid does.)
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("UUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("UUID %q: %v", s, err)
	}
	return u, nil
}

// RootHashFromUUIDs derives the root hash from the data and hash partition UUIDs, as systemd
// does when a DDI has a hash partition but no signature and no root hash was given
// (dissected_image_guess_verity_roothash in src/shared/dissect-image.c, $SYSTEMD_DISSECT_VERITY_GUESS):
// systemd-repart gives the data partition the first 128 bits of the root hash as its UUID and
// the hash partition the last 128 bits (UAPI.2 Discoverable Partitions Specification), so the
// two UUIDs joined are the 256-bit sha256 root hash.
func RootHashFromUUIDs(dataUUID, hashUUID string) ([]byte, error) {
	d, err := ParseUUID(dataUUID)
	if err != nil {
		return nil, fmt.Errorf("data partition %w", err)
	}
	h, err := ParseUUID(hashUUID)
	if err != nil {
		return nil, fmt.Errorf("hash partition %w", err)
	}
	if d == ([16]byte{}) || h == ([16]byte{}) {
		return nil, fmt.Errorf("partition UUIDs %s and %s: a null UUID cannot be half of a root hash", dataUUID, hashUUID)
	}
	return append(d[:], h[:]...), nil
}

// CheckUUIDs reports whether the data and hash partition UUIDs are the halves of rootHash. When
// systemd knows the root hash (from the signature or the caller) it only accepts the data and
// hash partitions whose UUIDs match it and ignores the others, so an image whose UUIDs do not
// match has, for systemd, no root partition for that hash ("No root partition for specified
// root hash found"). Empty UUIDs are not checked.
func CheckUUIDs(rootHash []byte, source RootSource, dataUUID, hashUUID string) error {
	if len(rootHash) != digestSize {
		return fmt.Errorf("root hash from %s: %d bytes, want %d", source, len(rootHash), digestSize)
	}
	for _, c := range []struct {
		part, uuid, half string
		want             []byte
	}{
		{"data", dataUUID, "first", rootHash[:16]},
		{"hash", hashUUID, "last", rootHash[16:]},
	} {
		if c.uuid == "" {
			continue
		}
		u, err := ParseUUID(c.uuid)
		if err != nil {
			return fmt.Errorf("%s partition %w", c.part, err)
		}
		if string(u[:]) != string(c.want) {
			return fmt.Errorf("%w: %s partition UUID %s is not the %s half of the root hash from %s (%s): systemd ignores a partition whose UUID does not match the root hash",
				ErrCorrupt, c.part, strings.ToLower(c.uuid), c.half, source, formatUUID(c.want))
		}
	}
	return nil
}
