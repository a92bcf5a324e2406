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
	table, parts, closeImage, err := openStoreDDI(root, img)
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	defer closeImage()
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

// VerifyData hashes every data block of each partition of img whose hash tree Admit verified
// (img.RootHashes), as `veritysetup verify` does: dm-verity checks a block only when it is
// read, so without this a changed block that no read touches before the merge (inside a
// firmware file) would be found only when the kernel reads it, after the image is merged.
// The error names the partition and the first changed block.
func VerifyData(root *hostfs.Root, img *Image) error {
	if img.Format != FormatGPT || len(img.RootHashes) == 0 {
		return nil
	}
	table, parts, closeImage, err := openStoreDDI(root, img)
	if err != nil {
		return fmt.Errorf("integrity: %w", err)
	}
	defer closeImage()
	for _, p := range [][2]*gpt.Partition{{parts.Root, parts.RootVerity}, {parts.Usr, parts.UsrVerity}} {
		data, hash := p[0], p[1]
		if data == nil || hash == nil || img.RootHashes[data.Number] == nil {
			continue
		}
		tree, err := verity.Open(table.Section(data), data.Size, table.Section(hash), hash.Size, img.RootHashes[data.Number], verity.SourceCaller)
		if err == nil {
			err = tree.VerifyData()
		}
		if err != nil {
			return fmt.Errorf("partition %d: %w", data.Number, err)
		}
	}
	return nil
}

// openStoreDDI reads the GPT of the DDI img and finds the partitions systemd-sysext would use; the
// returned function closes the file.
func openStoreDDI(root *hostfs.Root, img *Image) (*gpt.Table, *gpt.Partitions, func(), error) {
	file := img.Path
	if img.Target != "" {
		file = img.Target
	}
	f, err := os.Open(root.Real(file))
	if err != nil {
		return nil, nil, nil, err
	}
	table, parts, err := readDDI(f)
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	return table, parts, func() { f.Close() }, nil
}

func readDDI(f *os.File) (*gpt.Table, *gpt.Partitions, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	table, err := gpt.Read(f, info.Size())
	if err != nil {
		return nil, nil, err
	}
	parts, err := table.Sysext(gpt.HostArch())
	return table, parts, err
}
