package sysextcheck

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

var debian = map[string]string{"ID": "debian", "VERSION_ID": "12", "ID_LIKE": "ubuntu kairos"}

func TestCheck(t *testing.T) {
	cases := []struct {
		name    string
		release map[string]string
		host    map[string]string
		scope   string
		want    string // "" = merged
		field   string
	}{
		{"auroraboot", map[string]string{"ID": "_any", "ARCHITECTURE": "x86-64"}, debian, ScopeSystem, "", ""},
		{"any arch any os", map[string]string{"ID": "_any", "ARCHITECTURE": "_any"}, debian, ScopeSystem, "", ""},
		{"no arch", map[string]string{"ID": "_any"}, debian, ScopeSystem, "", ""},
		{"empty arch", map[string]string{"ID": "_any", "ARCHITECTURE": ""}, debian, ScopeSystem, "", ""},
		{"default scope in initrd", map[string]string{"ID": "_any"}, debian, ScopeInitrd,
			`SYSEXT_SCOPE: extension has none, which means "system portable", and that does not include "initrd"`, "SYSEXT_SCOPE"},
		{"initrd scope", map[string]string{"ID": "_any", "SYSEXT_SCOPE": "initrd"}, debian, ScopeInitrd, "", ""},
		{"initrd only after pivot", map[string]string{"ID": "_any", "SYSEXT_SCOPE": "initrd"}, debian, ScopeSystem,
			`SYSEXT_SCOPE: extension "initrd" does not include "system"`, "SYSEXT_SCOPE"},
		{"scope list", map[string]string{"ID": "_any", "SYSEXT_SCOPE": " initrd\tsystem  portable "}, debian, ScopeSystem, "", ""},
		{"empty scope", map[string]string{"ID": "_any", "SYSEXT_SCOPE": ""}, debian, ScopeSystem,
			`SYSEXT_SCOPE: extension "" does not include "system"`, "SYSEXT_SCOPE"},
		{"scope not checked", map[string]string{"ID": "_any", "SYSEXT_SCOPE": "portable"}, debian, "", "", ""},
		{"scope before arch", map[string]string{"ID": "_any", "SYSEXT_SCOPE": "portable", "ARCHITECTURE": "arm64"}, debian, ScopeSystem,
			`SYSEXT_SCOPE: extension "portable" does not include "system"`, "SYSEXT_SCOPE"},
		{"arch", map[string]string{"ID": "_any", "ARCHITECTURE": "arm64"}, debian, ScopeSystem,
			`ARCHITECTURE: extension "arm64" does not match host "x86-64"`, "ARCHITECTURE"},
		{"arch before id", map[string]string{"ID": "fedora", "ARCHITECTURE": "x86"}, debian, ScopeSystem,
			`ARCHITECTURE: extension "x86" does not match host "x86-64"`, "ARCHITECTURE"},
		{"no id", map[string]string{"VERSION_ID": "12"}, debian, ScopeSystem,
			`ID: extension has none; it must be "_any" or match host "debian"`, "ID"},
		{"other id", map[string]string{"ID": "fedora", "VERSION_ID": "12"}, debian, ScopeSystem,
			`ID: extension "fedora" does not match host "debian"`, "ID"},
		{"id like ignored by 252", map[string]string{"ID": "ubuntu", "VERSION_ID": "12"}, debian, ScopeSystem,
			`ID: extension "ubuntu" does not match host "debian"`, "ID"},
		{"id and version", map[string]string{"ID": "debian", "VERSION_ID": "12"}, debian, ScopeSystem, "", ""},
		{"any skips version", map[string]string{"ID": "_any", "VERSION_ID": "1"}, debian, ScopeSystem, "", ""},
		{"version", map[string]string{"ID": "debian", "VERSION_ID": "11"}, debian, ScopeSystem,
			`VERSION_ID: extension "11" does not match host "12"`, "VERSION_ID"},
		{"no version", map[string]string{"ID": "debian"}, debian, ScopeSystem,
			`VERSION_ID: extension has none, host has "12"`, "VERSION_ID"},
		{"rolling host", map[string]string{"ID": "arch", "VERSION_ID": "7"}, map[string]string{"ID": "arch"}, ScopeSystem, "", ""},
		{"level", map[string]string{"ID": "kairos", "SYSEXT_LEVEL": "2", "VERSION_ID": "nope"}, map[string]string{"ID": "kairos", "VERSION_ID": "3.1", "SYSEXT_LEVEL": "2"}, ScopeSystem, "", ""},
		{"level mismatch", map[string]string{"ID": "kairos", "SYSEXT_LEVEL": "1", "VERSION_ID": "3.1"}, map[string]string{"ID": "kairos", "VERSION_ID": "3.1", "SYSEXT_LEVEL": "2"}, ScopeSystem,
			`SYSEXT_LEVEL: extension "1" does not match host "2"`, "SYSEXT_LEVEL"},
		{"level on host only: version decides", map[string]string{"ID": "kairos", "VERSION_ID": "3.1"}, map[string]string{"ID": "kairos", "VERSION_ID": "3.1", "SYSEXT_LEVEL": "2"}, ScopeSystem, "", ""},
		{"level on host only, no version", map[string]string{"ID": "kairos"}, map[string]string{"ID": "kairos", "VERSION_ID": "3.1", "SYSEXT_LEVEL": "2"}, ScopeSystem,
			`VERSION_ID: extension has neither SYSEXT_LEVEL (host "2") nor VERSION_ID (host "3.1")`, "VERSION_ID"},
		{"level on extension only: version decides", map[string]string{"ID": "debian", "SYSEXT_LEVEL": "9", "VERSION_ID": "11"}, debian, ScopeSystem,
			`VERSION_ID: extension "11" does not match host "12"`, "VERSION_ID"},
		{"host level only", map[string]string{"ID": "kairos"}, map[string]string{"ID": "kairos", "SYSEXT_LEVEL": "2"}, ScopeSystem, "", ""},
		{"empty release", map[string]string{}, debian, ScopeSystem,
			`extension-release: the file has no assignments (systemd: "carries no release data")`, "extension-release"},
		{"host without id", map[string]string{"ID": "_any"}, map[string]string{"VERSION_ID": "1"}, ScopeSystem,
			"ID: the host's os-release has no ID, so systemd-sysext merges no extension", "ID"},
	}
	for _, c := range cases {
		err := Check(c.release, c.host, c.scope, "x86-64")
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: Check = %v, want merged", c.name, err)
			}
			continue
		}
		var e *Error
		if err == nil || err.Error() != c.want || !errors.As(err, &e) || e.Field != c.field || !errors.Is(err, ErrRefused) {
			t.Errorf("%s: Check = %v, want %q (field %s)", c.name, err, c.want, c.field)
		}
	}
}

func TestCheckValues(t *testing.T) {
	err := Check(map[string]string{"ID": "_any", "ARCHITECTURE": "arm64"}, debian, ScopeSystem, "x86-64")
	var e *Error
	if !errors.As(err, &e) || e.Extension != "arm64" || e.Host != "x86-64" {
		t.Errorf("Error = %#v", err)
	}
}

func TestIDLike(t *testing.T) {
	r := map[string]string{"ID": "ubuntu", "VERSION_ID": "12"}
	if err := Systemd258.Check(r, debian, ScopeSystem, "x86-64"); err != nil {
		t.Errorf("v258 with ID_LIKE: %v", err)
	}
	r["ID"] = "fedora"
	want := `ID: extension "fedora" does not match host "debian" or its ID_LIKE "ubuntu kairos"`
	if err := Systemd258.Check(r, debian, ScopeSystem, "x86-64"); err == nil || err.Error() != want {
		t.Errorf("v258 = %v, want %q", err, want)
	}
	// version checks still apply after an ID_LIKE match
	r = map[string]string{"ID": "kairos", "VERSION_ID": "11"}
	if err := Systemd258.Check(r, debian, ScopeSystem, "x86-64"); err == nil || err.Error() != `VERSION_ID: extension "11" does not match host "12"` {
		t.Errorf("v258 version after ID_LIKE = %v", err)
	}
}

func TestScope(t *testing.T) {
	if Scope(true) != "initrd" || Scope(false) != "system" {
		t.Errorf("Scope: %q %q", Scope(true), Scope(false))
	}
	if HostArch() == "" {
		t.Errorf("HostArch is empty on %s", HostArch())
	}
}

func TestReadHost(t *testing.T) {
	dir := t.TempDir()
	write := func(p, data string) {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHost(root); err == nil {
		t.Errorf("ReadHost without os-release succeeded")
	}
	write("usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n")
	got, err := ReadHost(root)
	if err != nil || !reflect.DeepEqual(got, map[string]string{"ID": "debian", "VERSION_ID": "12"}) {
		t.Errorf("usr/lib/os-release: %v, %v", got, err)
	}
	// /etc/os-release wins; an absolute link resolves inside the root
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	write("opt/release", "ID=kairos\n")
	if err := os.Symlink("/opt/release", filepath.Join(dir, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	got, err = ReadHost(root)
	if err != nil || got["ID"] != "kairos" {
		t.Errorf("etc/os-release link: %v, %v", got, err)
	}
}
