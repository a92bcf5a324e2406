// Package verity judges the integrity of a systemd extension image in userspace, the way
// systemd would judge it when it sets the image up with dm-verity after the root pivot, without
// device-mapper (the initramfs reads the image before that, and CI kernels have no
// device-mapper at all).
//
// What it checks:
//
//   - the dm-verity hash tree of a DDI's root or usr partition against a root hash (Open, Tree):
//     the veritysetup superblock of the hash partition (format version 1, sha256), every hash
//     block from the root down (eagerly, when the tree is opened), then every data block when it
//     is read (lazily: Tree is an io.ReaderAt over the verified data, the way the dm-verity
//     device reads, so reading the firmware files of a 500 MB image does not hash all of it);
//     Tree.VerifyData hashes every data block at once, like `veritysetup verify`;
//   - where the root hash comes from (Inspect): a hash given by the caller, else the
//     `-verity-sig` partition's JSON (ParseSignature), else the GPT partition UUIDs
//     (RootHashFromUUIDs), in systemd's order;
//   - the PKCS#7 signature of the root hash against X.509 certificates read from directories,
//     /run/verity.d by default (LoadTrustStore, TrustStore.Verify);
//   - the policy (Decide): which image passes `signatures: auto|required|ignore` on a UKI or a
//     non-UKI boot, mirroring the image policies Kairos gives systemd-sysext.
//
// This package takes partitions as io.ReaderAt plus sizes (Parts), so that the GPT reader hands
// over io.SectionReaders of the image file; it never mounts anything and runs no program.
//
// Specifications and the code they were checked against:
//
//   - the hash tree: the kernel's Documentation/admin-guide/device-mapper/verity.rst and
//     drivers/md/dm-verity-target.c (levels, hash positions, salt before the block for format 1);
//   - the superblock: cryptsetup's lib/verity/verity.c (struct verity_sb, VERITY_read_sb,
//     VERITY_hash_offset_block) and https://gitlab.com/cryptsetup/cryptsetup/-/wikis/DMVerity;
//   - DDIs: the UAPI.2 Discoverable Partitions Specification
//     (https://uapi-group.org/specifications/specs/discoverable_partitions_specification/):
//     the data partition UUID is the first 128 bits of the root hash, the hash partition UUID the
//     last 128 bits; the signature partition holds NUL-padded JSON
//     {"rootHash": "<hex>", "certificateFingerprint": "<hex>", "signature": "<base64 DER PKCS#7>"};
//   - systemd: src/repart/repart.c (partition_format_verity_hash writes the superblock with
//     CRYPT_VERITY_CREATE_HASH and no CRYPT_VERITY_NO_HEADER, sha256, 32-byte salt;
//     sign_verity_roothash signs the lowercase hex root hash with
//     PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY), src/shared/dissect-image.c
//     (dissected_image_load_verity_sig_partition, dissected_image_guess_verity_roothash,
//     validate_signature_userspace: `*.crt` from the verity.d directories, PKCS7_verify with
//     PKCS7_NOINTERN|PKCS7_NOVERIFY, i.e. the signer must be one of those certificates, with no
//     chain building and no validity-period check) and man/systemd.image-policy.xml.
//
// docs/images.md ("Integrity") describes what is verified and the policy table.
package verity
