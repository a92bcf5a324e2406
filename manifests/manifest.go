package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// The embedded manifest: usr/lib/kairos-firmware/manifest.<NAME>.json inside the image, NAME
// being the suffix of the image's extension-release file. docs/images.md specifies it.
const (
	ManifestDir     = "usr/lib/kairos-firmware"
	ManifestVersion = 1
	manifestMaxSize = 16 << 20
)

// ManifestPath is where an image named name carries its manifest.
func ManifestPath(name string) string { return ManifestDir + "/manifest." + name + ".json" }

// Manifest is the embedded manifest, version 1.
type Manifest struct {
	Version  int                `json:"version"`
	Name     string             `json:"name"`
	Firmware []ManifestFirmware `json:"firmware"`
	Modules  []Module           `json:"modules,omitempty"`
}

// ManifestFirmware is one firmware file: its path under usr/lib/firmware as stored (with a
// .zst or .xz suffix when compressed), its size in bytes and the hex SHA-256 of the stored
// bytes.
type ManifestFirmware struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Module is a kernel module an image ships: its name, the modalias patterns it declares
// (fnmatch patterns as in modules.alias) and the firmware names it may request (its
// modinfo firmware= entries).
type Module struct {
	Name     string   `json:"name"`
	Aliases  []string `json:"aliases,omitempty"`
	Firmware []string `json:"firmware,omitempty"`
}

var (
	sha256Hex  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	moduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// ParseManifest decodes and validates a manifest for the image called name. Checks, in
// order: one JSON object with only known fields, version, name, then each firmware entry
// (path rules, size, sha256, duplicates), then each module (name, duplicates after "-" → "_",
// aliases, firmware names).
func ParseManifest(data []byte, name string) (*Manifest, error) {
	if len(data) > manifestMaxSize {
		return nil, fmt.Errorf("%d bytes, more than %d", len(data), manifestMaxSize)
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if head.Version == nil {
		return nil, fmt.Errorf("field version is missing, want %d", ManifestVersion)
	}
	if *head.Version != ManifestVersion {
		return nil, fmt.Errorf("field version is %d, this tool reads version %d", *head.Version, ManifestVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("version %d: %w", ManifestVersion, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("data after the JSON object")
	}
	if m.Name != name {
		return nil, fmt.Errorf("field name is %q, the image is %q", m.Name, name)
	}
	seen := map[string]int{}
	for i, fw := range m.Firmware {
		if err := checkFirmwarePath(fw.Path); err != nil {
			return nil, fmt.Errorf("firmware[%d].path %q: %w", i, fw.Path, err)
		}
		if j, dup := seen[fw.Path]; dup {
			return nil, fmt.Errorf("firmware[%d].path %q duplicates firmware[%d]", i, fw.Path, j)
		}
		seen[fw.Path] = i
		if fw.Size < 0 {
			return nil, fmt.Errorf("firmware[%d] (%s): size is %d, want >= 0", i, fw.Path, fw.Size)
		}
		if !sha256Hex.MatchString(fw.SHA256) {
			return nil, fmt.Errorf("firmware[%d] (%s): sha256 %q is not 64 lowercase hex digits", i, fw.Path, fw.SHA256)
		}
	}
	mods := map[string]int{}
	for i, mod := range m.Modules {
		if !moduleName.MatchString(mod.Name) {
			return nil, fmt.Errorf("modules[%d].name %q: want letters, digits, '_' or '-'", i, mod.Name)
		}
		norm := strings.ReplaceAll(mod.Name, "-", "_")
		if j, dup := mods[norm]; dup {
			return nil, fmt.Errorf("modules[%d].name %q duplicates modules[%d] (%q)", i, mod.Name, j, m.Modules[j].Name)
		}
		mods[norm] = i
		for k, a := range mod.Aliases {
			if a == "" || strings.ContainsAny(a, " \t\n\r") {
				return nil, fmt.Errorf("modules[%d] (%s).aliases[%d] %q: empty or contains whitespace", i, mod.Name, k, a)
			}
		}
		for k, fw := range mod.Firmware {
			if err := checkFirmwarePath(fw); err != nil {
				return nil, fmt.Errorf("modules[%d] (%s).firmware[%d] %q: %w", i, mod.Name, k, fw, err)
			}
		}
	}
	return &m, nil
}

// checkFirmwarePath checks a path relative to usr/lib/firmware.
func checkFirmwarePath(p string) error {
	switch {
	case p == "":
		return errors.New("empty")
	case strings.HasPrefix(p, "/"):
		return errors.New("absolute, want a path relative to usr/lib/firmware")
	case strings.ContainsRune(p, 0) || strings.ContainsRune(p, '\\'):
		return errors.New("contains NUL or '\\'")
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return errors.New("contains \"..\"")
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("not clean (want %q)", path.Clean(p))
	}
	if p == updatesDir || strings.HasPrefix(p, updatesDir+"/") {
		return errUpdates
	}
	return nil
}
