package split

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
)

// CatalogFile is the catalog's name in the output directory.
const CatalogFile = "catalog.json"

// CatalogVersion is the catalog format this package writes.
const CatalogVersion = 1

// Catalog lists every image split wrote. It holds no path of the build host and no time, so
// the same input gives the same catalog.
type Catalog struct {
	Version       int    `json:"version"`
	KernelRelease string `json:"kernel_release"`
	Format        Format `json:"format"`
	// Release is the extension-release every image carries.
	Release  map[string]string `json:"extension_release"`
	Images   []CatalogImage    `json:"images"`
	Notes    []string          `json:"notes"`
	Warnings []string          `json:"warnings"`
}

// CatalogImage is one image.
type CatalogImage struct {
	Name string `json:"name"`
	// File is the image's name in the output directory: NAME.raw, or NAME for a directory.
	File   string `json:"file"`
	Format Format `json:"format"`
	// Kind is module, shared, group or catch-all.
	Kind string `json:"kind"`
	// SHA256 and Size are the image file's; for a directory image SHA256 is absent and Size
	// counts the bytes of its regular files.
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size"`
	// ContentSHA256 is the digest of the tree inside (paths, types, link targets, file
	// digests), equal across formats.
	ContentSHA256 string `json:"content_sha256"`
	// Modules are the modules whose declared firmware the image holds.
	Modules []string `json:"modules"`
	// Firmware counts the names the image's manifest lists, FirmwareBytes the bytes of its
	// firmware files (links weigh nothing).
	Firmware      int   `json:"firmware"`
	FirmwareBytes int64 `json:"firmware_bytes"`
}

// write stores the catalog as OUT/catalog.json.
func (c *Catalog) write(out string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, CatalogFile), append(data, '\n'), 0o644)
}

// ReadCatalog reads OUT/catalog.json.
func ReadCatalog(out string) (*Catalog, error) {
	data, err := os.ReadFile(filepath.Join(out, CatalogFile))
	if err != nil {
		return nil, err
	}
	var c Catalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// fileDigest is the hex SHA-256 and size of a file.
func fileDigest(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
