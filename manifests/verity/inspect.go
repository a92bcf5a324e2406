package verity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Kind is what an image is, as far as integrity goes.
type Kind string

// Image kinds. systemd-sysext bind-mounts a directory without any image policy; it dissects a
// bare file system image (erofs, squashfs) as a single root partition without verity
// ("unprotected"), and a GPT DDI by its partitions.
const (
	KindDirectory  Kind = "directory"
	KindFilesystem Kind = "filesystem"
	KindDDI        Kind = "ddi"
)

// KindOf maps a format name of package manifests ("directory", "erofs", "squashfs", "gpt") to
// its Kind; "" for an unknown one.
func KindOf(format string) Kind {
	switch format {
	case "directory":
		return KindDirectory
	case "erofs", "squashfs":
		return KindFilesystem
	case "gpt":
		return KindDDI
	}
	return ""
}

// Parts are the partitions of a DDI that matter here, as the GPT reader finds them for the
// root (or usr) designator: the data partition, and its `-verity` and `-verity-sig` partitions
// when they exist. Readers are typically io.SectionReaders of the image file.
type Parts struct {
	Data     io.ReaderAt
	DataSize int64
	DataUUID string // GPT partition UUID in text form; "" if unknown

	Hash     io.ReaderAt // nil: no hash partition
	HashSize int64
	HashUUID string

	Sig     io.ReaderAt // nil: no signature partition
	SigSize int64
}

// Options say what Inspect checks.
type Options struct {
	// RootHash is a root hash the caller knows (a .roothash file, a configuration); when set,
	// the signature's root hash must equal it.
	RootHash []byte
	// Trust verifies signatures; nil or empty means no signature can be verified.
	Trust *TrustStore
	// Full hashes every data block now (like `veritysetup verify`); otherwise data blocks are
	// verified when they are read through the returned Tree, as dm-verity does.
	Full bool
}

// Evidence is what is known of an image's integrity, for Decide.
type Evidence struct {
	Kind Kind
	// Verity: the image has a dm-verity hash partition for its data partition.
	Verity bool
	// RootHashSource is where the root hash came from (Verity only).
	RootHashSource RootSource
	// RootHash is the root hash the tree was checked against (Verity only).
	RootHash []byte
	// VerityErr is why the image cannot be set up with verity: no usable root hash, a malformed
	// superblock or signature partition, hash blocks or (with Options.Full) data blocks that do
	// not match. nil with Verity set means the hash tree matched the root hash.
	VerityErr error
	// Signed: the image has a verity signature partition.
	Signed bool
	// Signer is the trusted certificate the signature was verified with; nil if not verified.
	Signer *Certificate
	// SignatureErr is why the signature was not verified (Signed and Signer nil).
	SignatureErr error
}

// VerityOK reports whether the image has verity and its hash tree matched the root hash.
func (e Evidence) VerityOK() bool { return e.Verity && e.VerityErr == nil }

// SignatureOK reports whether the image is signed and the signature was verified.
func (e Evidence) SignatureOK() bool { return e.Signed && e.Signer != nil && e.SignatureErr == nil }

// String summarizes the evidence for logs.
func (e Evidence) String() string {
	var b strings.Builder
	b.WriteString(string(e.Kind))
	switch {
	case !e.Verity:
		b.WriteString(", no verity")
	case e.VerityErr != nil:
		fmt.Fprintf(&b, ", verity failed: %v", e.VerityErr)
	default:
		fmt.Fprintf(&b, ", verity ok (root hash %s from %s)", hexString(e.RootHash), e.RootHashSource)
	}
	switch {
	case !e.Signed:
		b.WriteString(", unsigned")
	case e.SignatureOK():
		fmt.Fprintf(&b, ", signed by %s", e.Signer)
	default:
		fmt.Fprintf(&b, ", signature not verified: %v", e.SignatureErr)
	}
	return b.String()
}

// Inspect gathers the evidence for a DDI the way systemd sets it up:
//
//  1. a signature partition is parsed (a malformed one makes systemd's dissection fail, so it
//     is a VerityErr); without a hash partition the image has no verity;
//  2. the root hash is the caller's (which must then equal the signature's), else the
//     signature's, else the one the partition UUIDs spell; when it comes from the caller or
//     the signature, the partition UUIDs (where known) must be its halves;
//  3. the hash tree is verified against it (and every data block with Options.Full);
//  4. the signature is verified against Options.Trust.
//
// The returned Tree reads the data partition verified; it is nil unless VerityOK.
func Inspect(p Parts, o Options) (Evidence, *Tree) {
	ev := Evidence{Kind: KindDDI, Verity: p.Hash != nil, Signed: p.Sig != nil}
	var sig *Signature
	if p.Sig != nil {
		var err error
		if sig, err = ReadSignature(p.Sig, p.SigSize); err != nil {
			ev.SignatureErr = err
			if ev.Verity {
				ev.VerityErr = fmt.Errorf("%w (systemd cannot set up an image whose signature partition it cannot read)", err)
			}
			sig = nil
		}
	}
	if !ev.Verity {
		if ev.Signed && ev.SignatureErr == nil {
			ev.SignatureErr = errors.New("the image has a signature partition but no hash partition: there is no hash tree for the signature to cover")
		}
		return ev, nil
	}
	if ev.VerityErr != nil {
		return ev, nil
	}

	// The root hash, in systemd's order: given, signed, guessed from the UUIDs.
	switch {
	case o.RootHash != nil:
		ev.RootHash, ev.RootHashSource = o.RootHash, SourceCaller
		if sig != nil && !bytes.Equal(sig.RootHash, o.RootHash) {
			ev.VerityErr = fmt.Errorf("%w: root hash mismatch: the caller gives %s, the signature covers %s", ErrCorrupt, hexString(o.RootHash), hexString(sig.RootHash))
		}
	case sig != nil:
		ev.RootHash, ev.RootHashSource = sig.RootHash, SourceSignature
	case p.DataUUID != "" && p.HashUUID != "":
		rh, err := RootHashFromUUIDs(p.DataUUID, p.HashUUID)
		if err != nil {
			ev.VerityErr = fmt.Errorf("no root hash: no signature, none given, and the partition UUIDs do not give one: %w", err)
		}
		ev.RootHash, ev.RootHashSource = rh, SourceUUIDs
	default:
		ev.VerityErr = errors.New("no root hash: no signature partition, none given, and the partition UUIDs are unknown")
	}
	if ev.VerityErr == nil && ev.RootHashSource != SourceUUIDs {
		ev.VerityErr = CheckUUIDs(ev.RootHash, ev.RootHashSource, p.DataUUID, p.HashUUID)
	}
	var tree *Tree
	if ev.VerityErr == nil {
		t, err := Open(p.Data, p.DataSize, p.Hash, p.HashSize, ev.RootHash, ev.RootHashSource)
		switch {
		case err != nil:
			ev.VerityErr = err
		case o.Full:
			if err := t.VerifyData(); err != nil {
				ev.VerityErr = err
			} else {
				tree = t
			}
		default:
			tree = t
		}
	}

	if sig != nil {
		ev.Signer, ev.SignatureErr = o.Trust.Verify(sig.RootHash, sig.PKCS7)
		if ev.SignatureErr != nil && sig.CertificateFingerprint != nil {
			ev.SignatureErr = fmt.Errorf("%w (the image names certificate sha256 %x)", ev.SignatureErr, sig.CertificateFingerprint)
		}
	}
	return ev, tree
}
