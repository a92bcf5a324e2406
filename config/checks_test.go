package config

import (
	"strings"
	"testing"
)

// TestChecks covers every branch of the value checks, with the exact message.
func TestChecks(t *testing.T) {
	type check func(string) (string, string)
	class := check(checkClass)
	glob := check(checkGlob)
	driver := check(checkDriver)
	store := check(checkStore)
	device := check(checkDeviceName)
	uri := check(checkInstallURI)
	name := check(checkImageName)
	id := func(s string) (string, string) {
		p, msg := checkIDPattern(s)
		if p == nil {
			return "", msg
		}
		return p.String(), msg
	}
	timeout := func(s string) (string, string) {
		d, msg := checkTimeout(s)
		return d.String(), msg
	}
	tests := []struct {
		check   check
		in      string
		want    string
		wantMsg string
	}{
		{name, "linux-firmware-realtek", "linux-firmware-realtek", ""},
		{name, "", "", "empty image name"},
		{name, strings.Repeat("n", 256), "", "image name longer than 255 bytes"},
		{name, ".", "", "image name cannot be . or .."},
		{name, "a/b", "", "image name cannot contain '/'; give the name, not a path"},
		{name, "a\x7fb", "", "image name contains a control character"},
		{name, "a\xffb", "", "image name is not valid UTF-8"},
		{name, ".#x", "", "image name cannot start with .# (systemd's temporary files)"},
		{name, "x.raw", "", "give the image name without .sysext.raw / .raw"},

		{id, "2357:011E", "2357:011e", ""},
		{id, "*:*", "*:*", ""},
		{id, "", "", "empty id; want vendor:product like 2357:011e"},
		{id, "2357011e", "", "not a vendor:product id; want hhhh:hhhh, '*' allowed per side"},
		{id, "2357:011e:", "", "more than one ':'; want hhhh:hhhh, '*' allowed per side"},
		{id, ":011e", "", "vendor is not 4 hex digits or '*'; want hhhh:hhhh, '*' allowed per side"},
		{id, "2357:**", "", "product is not 4 hex digits or '*'; want hhhh:hhhh, '*' allowed per side"},

		{class, "0x0280", "0280", ""},
		{class, "02800A", "02800a", ""},
		{class, "0x", "", "empty class; want 2, 4 or 6 hex digits like 0280"},
		{class, "", "", "empty class; want 2, 4 or 6 hex digits like 0280"},
		{class, "02-80", "", "class is not hex; want 2, 4 or 6 hex digits like 0280"},
		{class, "02800000", "", "class must be 2, 4 or 6 hex digits (class, +subclass, +prog-if)"},

		{glob, "pci:v*d[0-9a-f]*", "pci:v*d[0-9a-f]*", ""},
		{glob, "", "", "empty pattern"},
		{glob, "a\nb", "", "pattern contains a control character"},
		{glob, "[]a]", "", `invalid glob pattern; check the [...] classes and \ escapes`},

		{driver, "iwl-mvm", "iwl_mvm", ""},
		{driver, "", "", "empty module name"},
		{driver, strings.Repeat("m", 56), "", "module name longer than 55 characters (MODULE_NAME_LEN)"},
		{driver, "snd.hda", "", "module name may only contain letters, digits, '_' and '-'"},

		{store, "/var/lib/kairos/extensions", "/var/lib/kairos/extensions", ""},
		{store, "", "", "empty directory"},
		{store, "/a\x00b", "", "directory contains a control character"},
		{store, "relative", "", "directory must be an absolute path"},

		{device, "0000:00:1f.2", "0000:00:1f.2", ""},
		{device, "1-2:1.0", "1-2:1.0", ""},
		{device, "", "", "empty device name"},
		{device, strings.Repeat("d", 256), "", "device name longer than 255 bytes"},
		{device, "..", "", "device name cannot be . or .."},
		{device, "pci/0000:00:1f.2", "", "device name cannot contain '/'; give the name under /sys/bus/*/devices, like 0000:00:1f.2"},
		{device, "1-2\t", "", "device name contains white space or a control character"},

		{uri, "oci:quay.io/kairos/x:v1", "oci:quay.io/kairos/x:v1", ""},
		{uri, "docker://quay.io/kairos/x", "docker://quay.io/kairos/x", ""},
		{uri, "file:///usr/local/x.raw", "file:///usr/local/x.raw", ""},
		{uri, "", "", "empty URI"},
		{uri, "oci:x\u0085", "", "URI contains a control character"},
		{uri, "http://[::1", "", "not a URI: missing ']' in host"},
		{uri, "/usr/local/x.raw", "", "missing scheme; want oci:, docker:, container:, file:, http: or https:"},
		{uri, "s3://bucket/x.raw", "", `unsupported scheme "s3"; want oci:, docker:, container:, file:, http: or https:`},
		{uri, "file:", "", "nothing after the scheme"},

		{timeout, "1m30s", "1m30s", ""},
		{timeout, "5m", "5m0s", ""},
		{timeout, "ten", "0s", `not a Go duration; want a number with a unit, like "10s" or "1m30s"`},
		{timeout, "-1s", "0s", "timeout must be more than 0"},
		{timeout, "5m1s", "0s", "timeout longer than 5m0s"},
	}
	for _, tt := range tests {
		got, msg := tt.check(tt.in)
		if got != tt.want || msg != tt.wantMsg {
			t.Errorf("check(%q) = %q, %q; want %q, %q", tt.in, got, msg, tt.want, tt.wantMsg)
		}
	}
}

func TestCheckEnums(t *testing.T) {
	for _, s := range []string{"auto", "required", "ignore"} {
		if p, msg := checkSignatures(s); string(p) != s || msg != "" {
			t.Errorf("checkSignatures(%q) = %q, %q", s, p, msg)
		}
	}
	if _, msg := checkSignatures("Auto"); msg != "unknown signature policy; want auto, required or ignore" {
		t.Errorf("checkSignatures(Auto) message %q", msg)
	}
	for _, s := range []string{"failed", "matched", "off"} {
		if m, msg := checkMode(s); string(m) != s || msg != "" {
			t.Errorf("checkMode(%q) = %q, %q", s, m, msg)
		}
	}
	if _, msg := checkMode(""); msg != "unknown mode; want failed, matched or off" {
		t.Errorf("checkMode(\"\") message %q", msg)
	}
}
