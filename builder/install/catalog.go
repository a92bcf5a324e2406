package install

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
)

// Catalog holds the expected checksums of a catalog.json as `kairos-firmware split` writes
// it. It is read loosely: every JSON object anywhere in the file that has a "sha256" string and
// a "file" or "name" string is an entry, whatever the keys around it.
type Catalog struct {
	// Path is the file it was read from, for messages.
	Path    string
	entries []catalogEntry
}

type catalogEntry struct {
	name, file, sha256 string
}

// LoadCatalog reads a catalog file.
func LoadCatalog(file string) (*Catalog, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", file, err)
	}
	c := &Catalog{Path: file}
	c.collect(doc)
	if len(c.entries) == 0 {
		return nil, fmt.Errorf("catalog %s: no entry with a sha256 and a file or name", file)
	}
	return c, nil
}

func (c *Catalog) collect(v any) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			c.collect(e)
		}
	case map[string]any:
		sum, _ := v["sha256"].(string)
		file, _ := v["file"].(string)
		name, _ := v["name"].(string)
		if sum != "" && (file != "" || name != "") {
			c.entries = append(c.entries, catalogEntry{name: name, file: file, sha256: sum})
		}
		for _, e := range v {
			c.collect(e)
		}
	}
}

// Lookup returns the expected sha256 of the image file fileName: the entry whose file has that
// base name, else the entry whose name is the file name or the file name without .sysext.raw
// or .raw. No entry, or entries that disagree, are errors.
func (c *Catalog) Lookup(fileName string) (string, error) {
	stem := strings.TrimSuffix(strings.TrimSuffix(fileName, ".raw"), ".sysext")
	var sums []string
	for _, pass := range []func(catalogEntry) bool{
		func(e catalogEntry) bool { return e.file != "" && path.Base(e.file) == fileName },
		func(e catalogEntry) bool { return e.name == fileName || e.name == stem },
	} {
		for _, e := range c.entries {
			if pass(e) {
				sums = append(sums, e.sha256)
			}
		}
		if len(sums) > 0 {
			break
		}
	}
	if len(sums) == 0 {
		return "", fmt.Errorf("catalog %s has no entry for %s; nothing was written", c.Path, fileName)
	}
	want, err := NormalizeSHA256(sums[0])
	if err != nil {
		return "", fmt.Errorf("catalog %s: entry for %s: %w", c.Path, fileName, err)
	}
	for _, s := range sums[1:] {
		if other, _ := NormalizeSHA256(s); other != want {
			return "", fmt.Errorf("catalog %s has entries for %s with different sha256s", c.Path, fileName)
		}
	}
	return want, nil
}

// NormalizeSHA256 returns a sha256 as 64 lower-case hex digits; a "sha256:" prefix is allowed.
func NormalizeSHA256(s string) (string, error) {
	h := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"))
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	return h, nil
}
