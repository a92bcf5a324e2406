package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// hashFile returns the sha256 and size of the file at p under root.
func hashFile(root *hostfs.Root, p string) (string, int64, error) {
	f, err := root.FS.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", root.Real(p), err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("%s: %w", root.Real(p), err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
