// Package sysextcheck gives systemd-sysext's verdict on an extension image: whether its
// extension-release fields let systemd-sysext merge it on a host, checked in systemd's order
// (extension_release_validate in src/shared/extension-util.c, called from merge_subprocess in
// src/sysext/sysext.c; systemd 252 has the same logic in src/shared/extension-release.c).
//
// The image itself (its name, its extension-release file, no usr/lib/os-release inside) is
// read by package manifests; this package judges the fields. docs/images.md lists the rules
// with an example of each refusal.
package sysextcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
)

// Scopes of SYSEXT_SCOPE. systemd-sysext asks for "initrd" when it runs in the initrd
// (in_initrd()) and "system" after the pivot; portabled asks for "portable".
const (
	ScopeSystem   = "system"
	ScopeInitrd   = "initrd"
	ScopePortable = "portable"
)

// defaultScopes is what an extension without SYSEXT_SCOPE is good for.
var defaultScopes = []string{ScopeSystem, ScopePortable}

// Error is a refusal: the field that decided, and the extension's and the host's values.
type Error struct {
	Field     string // SYSEXT_SCOPE, ARCHITECTURE, ID, SYSEXT_LEVEL, VERSION_ID or extension-release
	Extension string // the extension's value ("" when absent)
	Host      string // the host's value, or the scope or architecture asked for
	msg       string
}

func (e *Error) Error() string { return e.Field + ": " + e.msg }

// ErrRefused is matched by every *Error (errors.Is).
var ErrRefused = errors.New("refused by systemd-sysext")

func (e *Error) Is(target error) bool { return target == ErrRefused }

// Rules select the behaviour that differs between systemd versions.
type Rules struct {
	// IDLike lets the extension's ID also match a word of the host's ID_LIKE (systemd v258
	// and later, systemd PR #37648; v252 to v257 compare ID only).
	IDLike bool
}

// Systemd252 are the rules of systemd 252 to 257, which Check follows: Debian 12 and most
// Kairos bases ship a systemd in that range (docs/images.md says why).
var Systemd252 = Rules{}

// Systemd258 are the rules of systemd 258 and later.
var Systemd258 = Rules{IDLike: true}

// Check is Systemd252.Check.
func Check(release, host map[string]string, scope, arch string) error {
	return Systemd252.Check(release, host, scope, arch)
}

// Check returns nil when systemd-sysext would merge an extension whose extension-release
// assignments are release, on a host whose os-release is host, asking for scope ("system",
// "initrd", or "" to skip the scope check as systemd does when it is given none) on
// architecture arch (systemd's name, see HostArch). Otherwise it returns an *Error naming the
// field and both values. Checks, in systemd's order:
//
//  1. the host has an ID (else systemd-sysext merges nothing at all);
//  2. the extension-release file has at least one assignment;
//  3. SYSEXT_SCOPE, split at whitespace, contains scope; absent, it means "system portable";
//  4. ARCHITECTURE, if set and not "_any", equals arch;
//  5. ID is set; "_any" accepts the extension here, without version checks;
//  6. ID equals the host's ID (or, with IDLike, one of the host's ID_LIKE words);
//  7. a host without VERSION_ID and SYSEXT_LEVEL accepts it (rolling releases);
//  8. if both the host and the extension set SYSEXT_LEVEL, they are equal;
//  9. otherwise, if the host sets VERSION_ID, the extension sets the same VERSION_ID.
func (r Rules) Check(release, host map[string]string, scope, arch string) error {
	hostID := host["ID"]
	if hostID == "" {
		return &Error{Field: "ID", msg: "the host's os-release has no ID, so systemd-sysext merges no extension"}
	}
	if len(release) == 0 {
		return &Error{Field: "extension-release", msg: "the file has no assignments (systemd: \"carries no release data\")"}
	}
	if scope != "" {
		v, set := release["SYSEXT_SCOPE"]
		scopes := defaultScopes
		if set {
			scopes = strings.FieldsFunc(v, isWhitespace)
		}
		if !slices.Contains(scopes, scope) {
			if !set {
				return &Error{Field: "SYSEXT_SCOPE", Host: scope, msg: fmt.Sprintf("extension has none, which means %q, and that does not include %q", strings.Join(defaultScopes, " "), scope)}
			}
			return &Error{Field: "SYSEXT_SCOPE", Extension: v, Host: scope, msg: fmt.Sprintf("extension %q does not include %q", v, scope)}
		}
	}
	if a := release["ARCHITECTURE"]; a != "" && a != "_any" && a != arch {
		return &Error{Field: "ARCHITECTURE", Extension: a, Host: arch, msg: fmt.Sprintf("extension %q does not match host %q", a, arch)}
	}
	id := release["ID"]
	switch {
	case id == "":
		return &Error{Field: "ID", Host: hostID, msg: fmt.Sprintf("extension has none; it must be \"_any\" or match host %q", hostID)}
	case id == "_any":
		return nil
	case id != hostID:
		like := host["ID_LIKE"]
		if r.IDLike && slices.Contains(strings.FieldsFunc(like, isWhitespace), id) {
			break
		}
		if r.IDLike && like != "" {
			return &Error{Field: "ID", Extension: id, Host: hostID, msg: fmt.Sprintf("extension %q does not match host %q or its ID_LIKE %q", id, hostID, like)}
		}
		return &Error{Field: "ID", Extension: id, Host: hostID, msg: fmt.Sprintf("extension %q does not match host %q", id, hostID)}
	}
	hostVersion, hostLevel := host["VERSION_ID"], host["SYSEXT_LEVEL"]
	if hostVersion == "" && hostLevel == "" {
		return nil
	}
	if level := release["SYSEXT_LEVEL"]; hostLevel != "" && level != "" {
		if level != hostLevel {
			return &Error{Field: "SYSEXT_LEVEL", Extension: level, Host: hostLevel, msg: fmt.Sprintf("extension %q does not match host %q", level, hostLevel)}
		}
		return nil
	}
	if hostVersion == "" {
		return nil // the host has only SYSEXT_LEVEL, the extension none
	}
	switch v := release["VERSION_ID"]; {
	case v == "" && hostLevel != "":
		return &Error{Field: "VERSION_ID", Host: hostVersion, msg: fmt.Sprintf("extension has neither SYSEXT_LEVEL (host %q) nor VERSION_ID (host %q)", hostLevel, hostVersion)}
	case v == "":
		return &Error{Field: "VERSION_ID", Host: hostVersion, msg: fmt.Sprintf("extension has none, host has %q", hostVersion)}
	case v != hostVersion:
		return &Error{Field: "VERSION_ID", Extension: v, Host: hostVersion, msg: fmt.Sprintf("extension %q does not match host %q", v, hostVersion)}
	}
	return nil
}

// isWhitespace is systemd's WHITESPACE set, which strv_split uses.
func isWhitespace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// HostArch is systemd's name of the architecture this program was built for ("x86-64",
// "arm64", ...). systemd-sysext compares ARCHITECTURE with the kernel's (uname), which is the
// same except for 32-bit programs on 64-bit kernels.
func HostArch() string { return gpt.HostArch() }

// Scope is the scope systemd-sysext asks for: "initrd" in the initrd, else "system".
func Scope(inInitrd bool) string {
	if inInitrd {
		return ScopeInitrd
	}
	return ScopeSystem
}

// ReadHost reads the os-release of the system at root as systemd's parse_os_release does:
// /etc/os-release, or /usr/lib/os-release when that does not exist, symlinks resolved inside
// root (Debian's /etc/os-release is a link to ../usr/lib/os-release).
func ReadHost(root *hostfs.Root) (map[string]string, error) {
	var missing []string
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		resolved, err := root.Resolve(p)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, root.Real(p))
			continue
		}
		if err != nil {
			return nil, err
		}
		data, err := root.FS.ReadFile(resolved)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", root.Real(p), err)
		}
		fields, err := manifests.ParseRelease(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", root.Real(p), err)
		}
		return fields, nil
	}
	return nil, fmt.Errorf("no os-release: %s do not exist", strings.Join(missing, " and "))
}
