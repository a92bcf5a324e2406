package split

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// staged is an image's tree written out: its content digest and what it offers.
type staged struct {
	digest        [sha256.Size]byte
	firmware      int   // names the manifest lists
	firmwareBytes int64 // bytes of the regular firmware files
	bytes         int64 // bytes of every regular file
}

// stage writes img's tree under dir in sorted order, directories 0755 and files 0644 whatever
// the umask (mkfs.erofs -T0 and mksquashfs -all-time 0 set every time): the firmware under
// usr/lib/firmware, links with their image targets, the extension-release file and the
// manifest. The digest covers every path, type, link target and file digest, so equal content
// gives an equal digest.
func (s *splitter) stage(img *image, dir string) (staged, error) {
	var st staged
	var records []string
	mkdir := func(rel string) error {
		full := filepath.Join(dir, rel)
		if _, err := os.Lstat(full); err == nil {
			return nil
		}
		if err := mkdirs(dir, rel); err != nil {
			return err
		}
		for p := rel; p != "." && p != ""; p = path.Dir(p) {
			records = append(records, "d "+p)
		}
		return nil
	}
	sums := map[string]string{}
	for _, rel := range sortedKeys(img.entries) {
		dst := path.Join(manifests.FirmwareDir, rel)
		if err := mkdir(path.Dir(dst)); err != nil {
			return st, err
		}
		e := s.tree.entries[rel]
		if e.kind == symlink {
			target, err := imageTarget(rel, e.target)
			if err != nil {
				return st, err
			}
			if err := os.Symlink(target, filepath.Join(dir, dst)); err != nil {
				return st, err
			}
			records = append(records, "l "+dst+" "+target)
			continue
		}
		sum, err := copyFile(filepath.Join(s.tree.dir, rel), filepath.Join(dir, dst))
		if err != nil {
			return st, err
		}
		sums[rel] = sum
		st.firmwareBytes += e.size
		records = append(records, "f "+dst+" "+sum)
	}
	list := offers(s.tree, img)
	st.firmware = len(list)
	manifest, err := manifestOf(s.tree, img, list, sums, s.assigned.modules)
	if err != nil {
		return st, err
	}
	for _, f := range []struct {
		rel  string
		data []byte
	}{
		{"usr/lib/extension-release.d/extension-release." + img.name, s.opts.Release.file()},
		{manifests.ManifestPath(img.name), manifest},
	} {
		if err := mkdir(path.Dir(f.rel)); err != nil {
			return st, err
		}
		if err := writeFile(filepath.Join(dir, f.rel), f.data); err != nil {
			return st, err
		}
		sum := sha256.Sum256(f.data)
		records = append(records, "f "+f.rel+" "+hex.EncodeToString(sum[:]))
		st.bytes += int64(len(f.data))
	}
	st.bytes += st.firmwareBytes
	records = uniqueSorted(records)
	st.digest = sha256.Sum256([]byte(strings.Join(records, "\n")))
	return st, nil
}

// copyFile copies src to dst (mode 0644) and returns the hex SHA-256 of the bytes.
func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Chmod(0o644); err != nil { // whatever the umask
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFile writes a file of mode 0644, whatever the umask.
func writeFile(p string, data []byte) error {
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	return os.Chmod(p, 0o644)
}

// mkdirs makes rel and its parents under dir, mode 0755 whatever the umask.
func mkdirs(dir, rel string) error {
	if rel == "." || rel == "" {
		return os.Chmod(dir, 0o755)
	}
	if err := mkdirs(dir, path.Dir(rel)); err != nil {
		return err
	}
	p := filepath.Join(dir, rel)
	if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	return os.Chmod(p, 0o755)
}
