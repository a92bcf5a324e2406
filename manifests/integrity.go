package manifests

import (
	"fmt"
	"os"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/verity"
)

// Admit judges img, read from root, under the signature policy (firmware.signatures) on a UKI
// boot or not: a DDI's dm-verity hash tree and signature are checked for every partition
// systemd-sysext would mount (root and /usr), and verity.Decide says whether the evidence passes
// the policy. nil means the image may be used; the error says why not. Directories and bare
// file systems carry no integrity data: the policy alone decides (docs/images.md, "Integrity").
// The root hash each verified tree matched is kept in img.RootHashes, for the dm-verity device
// that mounts the partition later.
func Admit(root *hostfs.Root, img *Image, policy string, ukiBoot bool, trust *verity.TrustStore) error {
	if img.Format != FormatGPT {
		return verity.Decide(policy, ukiBoot, verity.Evidence{Kind: verity.KindOf(string(img.Format))})
	}
	img.RootHashes = nil
	file := img.Path
	if img.Target != "" {
		file = img.Target
	}
	f, err := os.Open(root.Real(file))
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	table, err := gpt.Read(f, info.Size())
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	parts, err := table.Sysext(gpt.HostArch())
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	check := func(data, hash, sig *gpt.Partition) error {
		p := verity.Parts{Data: table.Section(data), DataSize: data.Size, DataUUID: data.UUID.String()}
		if hash != nil {
			p.Hash, p.HashSize, p.HashUUID = table.Section(hash), hash.Size, hash.UUID.String()
		}
		if sig != nil {
			p.Sig, p.SigSize = table.Section(sig), sig.Size
		}
		ev, _ := verity.Inspect(p, verity.Options{Trust: trust})
		if ev.VerityOK() {
			if img.RootHashes == nil {
				img.RootHashes = map[int][]byte{}
			}
			img.RootHashes[data.Number] = ev.RootHash
		}
		return verity.Decide(policy, ukiBoot, ev)
	}
	if parts.Root != nil {
		if err := check(parts.Root, parts.RootVerity, parts.RootVeritySig); err != nil {
			return fmt.Errorf("partition %d: %w", parts.Root.Number, err)
		}
	}
	if parts.Usr != nil {
		if err := check(parts.Usr, parts.UsrVerity, parts.UsrVeritySig); err != nil {
			return fmt.Errorf("partition %d: %w", parts.Usr.Number, err)
		}
	}
	return nil
}
