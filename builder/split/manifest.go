package split

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// offered is a firmware name an image answers and the tree file it reads.
type offered struct {
	name string
	file string
}

// offers lists what img answers, as manifests' tree walk would list it: regular files under
// their path, links under theirs, directory links walked under the link's name (a directory
// that is its own ancestor once).
func offers(t *tree, img *image) []offered {
	dirs := map[string]bool{"": true}
	for rel := range img.entries {
		for d := parent(rel); !dirs[d]; d = parent(d) {
			dirs[d] = true
		}
	}
	var out []offered
	active := map[string]bool{}
	var walk func(dir, as string)
	walk = func(dir, as string) {
		if active[dir] {
			return
		}
		active[dir] = true
		defer delete(active, dir)
		for _, child := range t.children[dir] {
			name := path.Join(as, path.Base(child))
			switch t.entries[child].kind {
			case directory:
				if dirs[child] {
					walk(child, name)
				}
			case regular:
				if img.entries[child] {
					out = append(out, offered{name, child})
				}
			case symlink:
				if !img.entries[child] {
					continue
				}
				c, err := t.resolve(child)
				if err != nil {
					continue // placed links resolve; kept for safety
				}
				if t.entries[c.final].kind == directory {
					walk(c.final, name)
				} else if img.entries[c.final] {
					out = append(out, offered{name, c.final})
				}
			}
		}
	}
	walk("", "")
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// manifestOf is img's embedded manifest (docs/images.md), checked by manifests.ParseManifest.
// sums are the SHA-256 digests of the regular files, by tree path.
func manifestOf(t *tree, img *image, list []offered, sums map[string]string, mods map[string]*module) ([]byte, error) {
	m := manifests.Manifest{Version: manifests.ManifestVersion, Name: img.name, Firmware: []manifests.ManifestFirmware{}}
	for _, o := range list {
		m.Firmware = append(m.Firmware, manifests.ManifestFirmware{Path: o.name, SHA256: sums[o.file], Size: t.entries[o.file].size})
	}
	for _, name := range sortedKeys(img.modules) {
		mod := manifests.Module{Name: name, Aliases: mods[name].aliases}
		for _, fw := range mods[name].firmware {
			if fs.ValidPath(fw) && fw != "." && !strings.ContainsRune(fw, '\\') && fw != "updates" && !strings.HasPrefix(fw, "updates/") {
				mod.Firmware = append(mod.Firmware, fw)
			}
		}
		m.Modules = append(m.Modules, mod)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if _, err := manifests.ParseManifest(data, img.name); err != nil {
		return nil, fmt.Errorf("image %s: the manifest written would not be read back: %w", img.name, err)
	}
	return data, nil
}

// Release is what an image's extension-release file says.
type Release struct {
	ID           string // "_any" or an os-release ID
	Architecture string // systemd's name ("x86-64"), or "_any"
	VersionID    string // optional
}

// file is the extension-release file's content. SYSEXT_SCOPE includes initrd: kairos-firmware
// makes the firmware visible in the initramfs.
func (r Release) file() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "ID=%s\nARCHITECTURE=%s\nSYSEXT_SCOPE=initrd system\n", r.ID, r.Architecture)
	if r.VersionID != "" {
		fmt.Fprintf(&b, "VERSION_ID=%s\n", r.VersionID)
	}
	return []byte(b.String())
}

// fields are the assignments, for the catalog.
func (r Release) fields() map[string]string {
	f := map[string]string{"ID": r.ID, "ARCHITECTURE": r.Architecture, "SYSEXT_SCOPE": "initrd system"}
	if r.VersionID != "" {
		f["VERSION_ID"] = r.VersionID
	}
	return f
}

func sortedKeys(set map[string]bool) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
