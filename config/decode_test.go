package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const testFile = "/oem/90_firmware.yaml"

// loadBody loads one cloud-config file whose body follows the header line, so body line 1 is
// file line 2.
func loadBody(t *testing.T, body string) (*Config, []Error) {
	t.Helper()
	root := newRoot(t, map[string]any{testFile: "#cloud-config\n" + body})
	c, _, errs := Load(root, nil)
	return c, errs
}

func TestDecodeErrors(t *testing.T) {
	const f = testFile
	tests := []struct {
		name string
		body string
		want []string
	}{
		{
			name: "unknown top-level key",
			body: "firmware:\n  autoo: true\n",
			want: []string{f + `:3:3: firmware.autoo: unknown key; want one of auto, signatures, certificates, stores, extensions, reprobe, install (value "autoo")`},
		},
		{
			name: "firmware is not a mapping",
			body: "firmware: [a]\n",
			want: []string{f + `:2:11: firmware: expected a mapping, got a list`},
		},
		{
			name: "firmware is a string",
			body: "firmware: on\n",
			want: []string{f + `:2:11: firmware: expected a mapping, got a string (value "on")`},
		},
		{
			name: "auto is not a boolean",
			body: "firmware:\n  auto: maybe\n",
			want: []string{f + `:3:9: firmware.auto: expected a boolean (true or false), got a string (value "maybe")`},
		},
		{
			name: "auto is a list",
			body: "firmware:\n  auto: [true]\n",
			want: []string{f + `:3:9: firmware.auto: expected a boolean (true or false), got a list`},
		},
		{
			name: "unknown signature policy",
			body: "firmware:\n  signatures: strict\n",
			want: []string{f + `:3:15: firmware.signatures: unknown signature policy; want auto, required or ignore (value "strict")`},
		},
		{
			name: "stores is not a list",
			body: "firmware:\n  stores: /var/lib/x\n",
			want: []string{f + `:3:11: firmware.stores: expected a list, got a string (value "/var/lib/x")`},
		},
		{
			name: "relative store",
			body: "firmware:\n  stores: [var/lib/x]\n",
			want: []string{f + `:3:12: firmware.stores[0]: directory must be an absolute path (value "var/lib/x")`},
		},
		{
			name: "empty store",
			body: "firmware:\n  stores: ['']\n",
			want: []string{f + `:3:12: firmware.stores[0]: empty directory`},
		},
		{
			name: "null store",
			body: "firmware:\n  stores: [~]\n",
			want: []string{f + `:3:12: firmware.stores[0]: expected a string, got null (value "~")`},
		},
		{
			name: "store listed twice",
			body: "firmware:\n  stores: [/a, /a]\n",
			want: []string{f + `:3:16: firmware.stores[1]: listed twice; first at line 3, column 12 (value "/a")`},
		},
		{
			name: "extension is not a mapping",
			body: "firmware:\n  extensions: [realtek]\n",
			want: []string{f + `:3:16: firmware.extensions[0]: expected a mapping, got a string (value "realtek")`},
		},
		{
			name: "extension is null",
			body: "firmware:\n  extensions:\n    -\n",
			want: []string{f + `:4:6: firmware.extensions[0]: empty rule; want a mapping with name and, optionally, when`},
		},
		{
			name: "missing name",
			body: "firmware:\n  extensions:\n    - when: [{usb: \"2357:011e\"}]\n",
			want: []string{f + `:4:7: firmware.extensions[0].name: missing; every rule names an image`},
		},
		{
			name: "empty name",
			body: "firmware:\n  extensions:\n    - name: \"\"\n",
			want: []string{f + `:4:13: firmware.extensions[0].name: empty image name`},
		},
		{
			name: "null name",
			body: "firmware:\n  extensions:\n    - name:\n",
			want: []string{f + `:4:12: firmware.extensions[0].name: empty image name`},
		},
		{
			name: "name is a path",
			body: "firmware:\n  extensions:\n    - name: /var/lib/kairos/extensions/realtek\n",
			want: []string{f + `:4:13: firmware.extensions[0].name: image name cannot contain '/'; give the name, not a path (value "/var/lib/kairos/extensions/realtek")`},
		},
		{
			name: "name with file suffix",
			body: "firmware:\n  extensions:\n    - name: realtek.sysext.raw\n",
			want: []string{f + `:4:13: firmware.extensions[0].name: give the image name without .sysext.raw / .raw (value "realtek.sysext.raw")`},
		},
		{
			name: "name is dot-dot",
			body: "firmware:\n  extensions:\n    - name: ..\n",
			want: []string{f + `:4:13: firmware.extensions[0].name: image name cannot be . or .. (value "..")`},
		},
		{
			name: "name with a control character",
			body: "firmware:\n  extensions:\n    - name: \"a\\tb\"\n",
			want: []string{f + `:4:13: firmware.extensions[0].name: image name contains a control character (value "a\tb")`},
		},
		{
			name: "name of a systemd temporary file",
			body: "firmware:\n  extensions:\n    - name: .#realtek\n",
			want: []string{f + `:4:13: firmware.extensions[0].name: image name cannot start with .# (systemd's temporary files) (value ".#realtek")`},
		},
		{
			name: "name too long",
			body: "firmware:\n  extensions:\n    - name: " + strings.Repeat("a", 256) + "\n",
			want: []string{f + `:4:13: firmware.extensions[0].name: image name longer than 255 bytes (value "` + strings.Repeat("a", 120) + `...")`},
		},
		{
			name: "duplicate rule names",
			body: "firmware:\n  extensions:\n    - name: realtek\n    - name: intel\n    - name: realtek\n",
			want: []string{f + `:6:13: firmware.extensions[2].name: rule name already used at line 4, column 13; put all matchers in one when list (value "realtek")`},
		},
		{
			name: "unknown rule key",
			body: "firmware:\n  extensions:\n    - name: realtek\n      whne: []\n",
			want: []string{f + `:5:7: firmware.extensions[0].whne: unknown key; want one of name, when (value "whne")`},
		},
		{
			name: "empty when list",
			body: "firmware:\n  extensions:\n    - name: realtek\n      when: []\n",
			want: []string{f + `:5:13: firmware.extensions[0].when: empty list would never match; leave when out to select the image always`},
		},
		{
			name: "when is a mapping",
			body: "firmware:\n  extensions:\n    - name: realtek\n      when: {usb: \"2357:011e\"}\n",
			want: []string{f + `:5:13: firmware.extensions[0].when: expected a list, got a mapping`},
		},
		{
			name: "usb id without colon",
			body: "firmware:\n  extensions:\n    - name: realtek\n      when:\n        - usb: \"2357\"\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].usb: not a vendor:product id; want hhhh:hhhh, '*' allowed per side (value "2357")`},
		},
		{
			name: "usb id with a short product",
			body: "firmware:\n  extensions:\n    - name: realtek\n      when:\n        - usb: \"2357:11e\"\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].usb: product is not 4 hex digits or '*'; want hhhh:hhhh, '*' allowed per side (value "2357:11e")`},
		},
		{
			name: "usb id with a non-hex vendor",
			body: "firmware:\n  extensions:\n    - name: realtek\n      when:\n        - usb: \"23g7:011e\"\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].usb: vendor is not 4 hex digits or '*'; want hhhh:hhhh, '*' allowed per side (value "23g7:011e")`},
		},
		{
			name: "usb id with a partial wildcard",
			body: "firmware:\n  extensions:\n    - name: realtek\n      when:\n        - usb: \"23*:011e\"\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].usb: vendor is not 4 hex digits or '*'; want hhhh:hhhh, '*' allowed per side (value "23*:011e")`},
		},
		{
			name: "pci id with three parts",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - pci: \"8086:2723:0084\"\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].pci: more than one ':'; want hhhh:hhhh, '*' allowed per side (value "8086:2723:0084")`},
		},
		{
			name: "empty pci id",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - pci: ''\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].pci: empty id; want vendor:product like 2357:011e`},
		},
		{
			name: "class is not hex",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - pci: \"8086:*\"\n          class: \"02x0\"\n",
			want: []string{f + `:7:18: firmware.extensions[0].when[0].class: class is not hex; want 2, 4 or 6 hex digits like 0280 (value "02x0")`},
		},
		{
			name: "class of odd length",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - pci: \"8086:*\"\n          class: \"028\"\n",
			want: []string{f + `:7:18: firmware.extensions[0].when[0].class: class must be 2, 4 or 6 hex digits (class, +subclass, +prog-if) (value "028")`},
		},
		{
			name: "class without pci",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - class: \"0280\"\n",
			want: []string{f + `:6:18: firmware.extensions[0].when[0].class: class needs pci in the same entry; use pci: "*:*" for any PCI device (value "0280")`},
		},
		{
			name: "usb and pci in one entry",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - usb: \"2357:011e\"\n          pci: \"8086:*\"\n",
			want: []string{f + `:6:11: firmware.extensions[0].when[0]: usb and pci in one entry never match the same device; write two entries`},
		},
		{
			name: "invalid modalias glob",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - modalias: \"pci:v[00008086d*\"\n",
			want: []string{f + `:6:21: firmware.extensions[0].when[0].modalias: invalid glob pattern; check the [...] classes and \ escapes (value "pci:v[00008086d*")`},
		},
		{
			name: "modalias glob with a trailing backslash",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - modalias: 'pci:v*\\'\n",
			want: []string{f + `:6:21: firmware.extensions[0].when[0].modalias: invalid glob pattern; check the [...] classes and \ escapes (value "pci:v*\\")`},
		},
		{
			name: "driver with a space",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - driver: \"iwl wifi\"\n",
			want: []string{f + `:6:19: firmware.extensions[0].when[0].driver: module name may only contain letters, digits, '_' and '-' (value "iwl wifi")`},
		},
		{
			name: "driver name too long",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - driver: " + strings.Repeat("m", 56) + "\n",
			want: []string{f + `:6:19: firmware.extensions[0].when[0].driver: module name longer than 55 characters (MODULE_NAME_LEN) (value "` + strings.Repeat("m", 56) + `")`},
		},
		{
			name: "unknown matcher key",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - vendor: \"8086\"\n",
			want: []string{f + `:6:11: firmware.extensions[0].when[0].vendor: unknown key; want one of usb, pci, class, modalias, driver, dmi (value "vendor")`},
		},
		{
			name: "empty matcher",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - {}\n",
			want: []string{f + `:6:11: firmware.extensions[0].when[0]: empty matcher; give usb, pci, modalias, driver or dmi`},
		},
		{
			name: "null matcher",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - ~\n",
			want: []string{f + `:6:11: firmware.extensions[0].when[0]: empty matcher; give usb, pci, modalias, driver or dmi`},
		},
		{
			name: "matcher with only null fields",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - usb:\n",
			want: []string{f + `:6:11: firmware.extensions[0].when[0]: empty matcher; give usb, pci, modalias, driver or dmi`},
		},
		{
			name: "unknown dmi field",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - dmi: {vendor: LENOVO}\n",
			want: []string{f + `:6:17: firmware.extensions[0].when[0].dmi.vendor: unknown key; want one of bios_vendor, bios_version, bios_date, bios_release, ec_firmware_release, sys_vendor, product_name, product_version, product_serial, product_uuid, product_sku, product_family, board_vendor, board_name, board_version, board_serial, board_asset_tag, chassis_vendor, chassis_type, chassis_version, chassis_serial, chassis_asset_tag (value "vendor")`},
		},
		{
			name: "invalid dmi glob",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - dmi: {sys_vendor: \"[LENOVO\"}\n",
			want: []string{f + `:6:29: firmware.extensions[0].when[0].dmi.sys_vendor: invalid glob pattern; check the [...] classes and \ escapes (value "[LENOVO")`},
		},
		{
			name: "empty dmi value",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - dmi: {product_name: \"\"}\n",
			want: []string{f + `:6:31: firmware.extensions[0].when[0].dmi.product_name: empty pattern`},
		},
		{
			name: "empty dmi matcher",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - dmi: {}\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].dmi: empty dmi matcher; give fields like sys_vendor or product_name`},
		},
		{
			name: "dmi is a string",
			body: "firmware:\n  extensions:\n    - name: intel\n      when:\n        - dmi: LENOVO\n",
			want: []string{f + `:6:16: firmware.extensions[0].when[0].dmi: expected a mapping, got a string (value "LENOVO")`},
		},
		{
			name: "unknown reprobe key",
			body: "firmware:\n  reprobe:\n    retries: 3\n",
			want: []string{f + `:4:5: firmware.reprobe.retries: unknown key; want one of mode, exclude, force, attempts, timeout (value "retries")`},
		},
		{
			name: "unknown mode",
			body: "firmware:\n  reprobe:\n    mode: always\n",
			want: []string{f + `:4:11: firmware.reprobe.mode: unknown mode; want failed, matched or off (value "always")`},
		},
		{
			name: "attempts zero",
			body: "firmware:\n  reprobe:\n    attempts: 0\n",
			want: []string{f + `:4:15: firmware.reprobe.attempts: attempts must be 1..10 (value "0")`},
		},
		{
			name: "attempts eleven",
			body: "firmware:\n  reprobe:\n    attempts: 11\n",
			want: []string{f + `:4:15: firmware.reprobe.attempts: attempts must be 1..10 (value "11")`},
		},
		{
			name: "attempts is a word",
			body: "firmware:\n  reprobe:\n    attempts: three\n",
			want: []string{f + `:4:15: firmware.reprobe.attempts: expected an integer, got a string (value "three")`},
		},
		{
			name: "attempts is a quoted number",
			body: "firmware:\n  reprobe:\n    attempts: \"3\"\n",
			want: []string{f + `:4:15: firmware.reprobe.attempts: expected an integer, got a string (value "3")`},
		},
		{
			name: "timeout without unit",
			body: "firmware:\n  reprobe:\n    timeout: 10\n",
			want: []string{f + `:4:14: firmware.reprobe.timeout: not a Go duration; want a number with a unit, like "10s" or "1m30s" (value "10")`},
		},
		{
			name: "timeout zero",
			body: "firmware:\n  reprobe:\n    timeout: 0s\n",
			want: []string{f + `:4:14: firmware.reprobe.timeout: timeout must be more than 0 (value "0s")`},
		},
		{
			name: "timeout too long",
			body: "firmware:\n  reprobe:\n    timeout: 1h\n",
			want: []string{f + `:4:14: firmware.reprobe.timeout: timeout longer than 5m0s (value "1h")`},
		},
		{
			name: "exclude is a path",
			body: "firmware:\n  reprobe:\n    exclude: [/sys/bus/pci/devices/0000:00:1f.2]\n",
			want: []string{f + `:4:15: firmware.reprobe.exclude[0]: device name cannot contain '/'; give the name under /sys/bus/*/devices, like 0000:00:1f.2 (value "/sys/bus/pci/devices/0000:00:1f.2")`},
		},
		{
			name: "force with white space",
			body: "firmware:\n  reprobe:\n    force: [\"0000:00:1f.2 0000:00:14.0\"]\n",
			want: []string{f + `:4:13: firmware.reprobe.force[0]: device name contains white space or a control character (value "0000:00:1f.2 0000:00:14.0")`},
		},
		{
			name: "force listed twice",
			body: "firmware:\n  reprobe:\n    force: [\"1-2\", \"1-2\"]\n",
			want: []string{f + `:4:20: firmware.reprobe.force[1]: listed twice; first at line 4, column 13 (value "1-2")`},
		},
		{
			name: "device both excluded and forced",
			body: "firmware:\n  reprobe:\n    exclude: [\"0000:00:1f.2\"]\n    force: [\"0000:00:1f.2\"]\n",
			want: []string{f + `:5:13: firmware.reprobe.force[0]: device is also in reprobe.exclude (` + f + `:4:15); list it in one of the two (value "0000:00:1f.2")`},
		},
		{
			name: "install without scheme",
			body: "firmware:\n  install: [quay.io/kairos/realtek:v1]\n",
			want: []string{f + `:3:13: firmware.install[0]: missing scheme; want oci:, docker:, container:, file:, http: or https: (value "quay.io/kairos/realtek:v1")`},
		},
		{
			name: "install with unsupported scheme",
			body: "firmware:\n  install: [\"ftp://example.org/realtek.sysext.raw\"]\n",
			want: []string{f + `:3:13: firmware.install[0]: unsupported scheme "ftp"; want oci:, docker:, container:, file:, http: or https: (value "ftp://example.org/realtek.sysext.raw")`},
		},
		{
			name: "install with nothing after the scheme",
			body: "firmware:\n  install: [\"oci:\"]\n",
			want: []string{f + `:3:13: firmware.install[0]: nothing after the scheme (value "oci:")`},
		},
		{
			name: "install that is not a URI",
			body: "firmware:\n  install: [\"http://[::1\"]\n",
			want: []string{f + `:3:13: firmware.install[0]: not a URI: missing ']' in host (value "http://[::1")`},
		},
		{
			name: "duplicate key",
			body: "firmware:\n  auto: true\n  auto: false\n",
			want: []string{f + `:4:3: firmware.auto: key appears twice; first at line 3, column 3 (value "auto")`},
		},
		{
			name: "duplicate firmware key",
			body: "firmware:\n  auto: true\nusers: []\nfirmware:\n  auto: false\n",
			want: []string{f + `:5:1: firmware: key appears twice; first at line 2, column 1 (value "firmware")`},
		},
		{
			name: "merge key",
			body: "defaults: &d\n  auto: false\nfirmware:\n  <<: *d\n",
			want: []string{f + `:5:3: firmware: YAML merge keys (<<) are not supported under firmware; write the keys out (value "<<")`},
		},
		{
			name: "key that is not a string",
			body: "firmware:\n  [auto]: true\n",
			want: []string{f + `:3:3: firmware: key is not a string but a list`},
		},
		{
			name: "invalid YAML",
			body: "firmware:\n  auto: true\n   signatures: auto\n",
			want: []string{f + `:4: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "errors of every kind are all collected",
			body: "firmware:\n  auto: 2\n  signatures: none\n  extensions:\n    - name: a.raw\n      when: [{usb: x}]\n  reprobe: {mode: x, attempts: 99}\n",
			want: []string{
				f + `:3:9: firmware.auto: expected a boolean (true or false), got an integer (value "2")`,
				f + `:4:15: firmware.signatures: unknown signature policy; want auto, required or ignore (value "none")`,
				f + `:6:13: firmware.extensions[0].name: give the image name without .sysext.raw / .raw (value "a.raw")`,
				f + `:7:20: firmware.extensions[0].when[0].usb: not a vendor:product id; want hhhh:hhhh, '*' allowed per side (value "x")`,
				f + `:8:19: firmware.reprobe.mode: unknown mode; want failed, matched or off (value "x")`,
				f + `:8:32: firmware.reprobe.attempts: attempts must be 1..10 (value "99")`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, errs := loadBody(t, tt.body)
			if got := messages(errs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
			if !reflect.DeepEqual(c, Defaults()) {
				t.Errorf("config with errors is not the defaults: %+v", c)
			}
		})
	}
}

func TestDecodeAliasBomb(t *testing.T) {
	// 400 aliases of a rule whose when list holds 400 aliases of one matcher expand to 160000
	// matchers from a file of a few kilobytes; the walk must stop at the node budget.
	refs := func(name string) string {
		return "[" + strings.TrimSuffix(strings.Repeat("*"+name+", ", 400), ", ") + "]"
	}
	body := "m: &m {usb: \"2357:011e\"}\n" +
		"w: &w " + refs("m") + "\n" +
		"r: &r {name: x, when: *w}\n" +
		"firmware:\n  extensions: " + refs("r") + "\n"
	_, errs := loadBody(t, body)
	got := messages(errs)
	// Each complete copy of the rule is a duplicate name; the walk stops in the 83rd copy.
	want := []string{}
	for i := 1; i <= 81; i++ {
		want = append(want, fmt.Sprintf(testFile+`:4:14: firmware.extensions[%d].name: rule name already used at line 4, column 14; put all matchers in one when list (value "x")`, i))
	}
	want = append(want, testFile+`:2:8: firmware.extensions[82].when[394]: more than 100000 YAML nodes under firmware (nested aliases?)`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestDecodeValid(t *testing.T) {
	c, errs := loadBody(t, `
firmware:
  auto: false
  signatures: required
  stores: [/var/lib/kairos/extensions, /usr/local/extensions]
  extensions:
    - name: linux-firmware-realtek
      when:
        - usb: "2357:011E"
        - pci: "10EC:*"
          class: 0x0280
        - modalias: "pci:v00008086d*bc02sc80*"
        - driver: r8188eu
        - dmi: {sys_vendor: "LENOVO*", product_name: "20*"}
    - name: linux-firmware-intel
  reprobe:
    mode: matched
    exclude: ["0000:00:1f.2"]
    force: ["1-2"]
    attempts: 5
    timeout: 1m30s
  install:
    - oci:quay.io/kairos/linux-firmware-realtek:v1
    - file:/usr/local/realtek.sysext.raw
    - https://example.org/realtek.sysext.raw
users:
  - name: kairos
    unknown-to-us: [this, is, not, ours]
`)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	want := &Config{
		Auto:         false,
		Signatures:   SignaturesRequired,
		Certificates: []string{},
		Stores:       []string{"/var/lib/kairos/extensions", "/usr/local/extensions"},
		Extensions: []Extension{
			{Name: "linux-firmware-realtek", When: []Match{
				{USB: &IDPattern{Vendor: "2357", Product: "011e"}},
				{PCI: &IDPattern{Vendor: "10ec", Product: "*"}, Class: "0280"},
				{Modalias: "pci:v00008086d*bc02sc80*"},
				{Driver: "r8188eu"},
				{DMI: map[string]string{"sys_vendor": "LENOVO*", "product_name": "20*"}},
			}},
			{Name: "linux-firmware-intel"},
		},
		Reprobe: Reprobe{
			Mode:     ReprobeMatched,
			Exclude:  []string{"0000:00:1f.2"},
			Force:    []string{"1-2"},
			Attempts: 5,
			Timeout:  Duration(90 * 1e9),
		},
		Install: []string{
			"oci:quay.io/kairos/linux-firmware-realtek:v1",
			"file:/usr/local/realtek.sysext.raw",
			"https://example.org/realtek.sysext.raw",
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config:\n got %+v\nwant %+v", c, want)
	}
}

func TestDecodeNormalizes(t *testing.T) {
	c, errs := loadBody(t, `
firmware:
  extensions:
    - name: a
      when:
        - pci: "8086:*"
          class: 0280
        - pci: "*:*"
          class: "0X02"
        - driver: iwl-mvm
`)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	when := c.Extensions[0].When
	// An unquoted 0280 is a YAML number; it is taken as written, not as 280.
	if when[0].Class != "0280" || when[1].Class != "02" || when[2].Driver != "iwl_mvm" {
		t.Errorf("got class %q, class %q, driver %q; want 0280, 02, iwl_mvm", when[0].Class, when[1].Class, when[2].Driver)
	}
}

func TestDecodeNullKeepsDefaults(t *testing.T) {
	c, errs := loadBody(t, `
firmware:
  auto: ~
  signatures:
  stores:
  extensions:
    - name: always
      when:
  reprobe:
    mode: null
    attempts:
`)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	want := Defaults()
	want.Extensions = []Extension{{Name: "always"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config:\n got %+v\nwant %+v", c, want)
	}
}

func TestDecodeAliases(t *testing.T) {
	c, errs := loadBody(t, `
intel: &intel {pci: "8086:*", class: "0280"}
firmware:
  extensions:
    - name: a
      when: [*intel]
    - name: b
      when: [*intel, {usb: "2357:011e"}]
`)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	if len(c.Extensions) != 2 || c.Extensions[1].When[0].PCI.String() != "8086:*" || c.Extensions[1].When[1].USB.String() != "2357:011e" {
		t.Errorf("aliases not followed: %+v", c.Extensions)
	}
}
