package manifests

import (
	"strings"
	"testing"
)

const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseManifest(t *testing.T) {
	good := `{"version":1,"name":"fw","firmware":[{"path":"rtw88/rtw8821a_fw.bin","sha256":"` + sum + `","size":10},
	{"path":"amd/x.bin.zst","sha256":"` + sum + `","size":3}],
	"modules":[{"name":"rtw88_8821au","aliases":["usb:v2357p011E*"],"firmware":["rtw88/rtw8821a_fw.bin"]}]}`
	m, err := ParseManifest([]byte(good), "fw")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Firmware) != 2 || m.Modules[0].Aliases[0] != "usb:v2357p011E*" {
		t.Fatalf("parsed %+v", m)
	}
	fw := manifestFirmware(m)
	if fw[0].Name != "amd/x.bin" || fw[0].Compression != "zstd" || fw[0].Path != "usr/lib/firmware/amd/x.bin.zst" || fw[0].SHA256 != sum {
		t.Errorf("manifestFirmware[0] = %+v", fw[0])
	}
	entry := func(p string) string { return `{"path":"` + p + `","sha256":"` + sum + `","size":1}` }
	for _, tc := range []struct{ name, json, want string }{
		{"not json", `{`, "invalid JSON"},
		{"no version", `{"name":"fw"}`, "version is missing"},
		{"version 2", `{"version":2,"name":"fw"}`, "version is 2"},
		{"unknown field", `{"version":1,"name":"fw","extra":1}`, "unknown field"},
		{"trailing data", `{"version":1,"name":"fw"} {}`, "after top-level value"},
		{"name", `{"version":1,"name":"other"}`, `name is "other", the image is "fw"`},
		{"absolute", `{"version":1,"name":"fw","firmware":[` + entry("/abs.bin") + `]}`, "absolute"},
		{"dotdot", `{"version":1,"name":"fw","firmware":[` + entry("a/../../x") + `]}`, `contains ".."`},
		{"unclean", `{"version":1,"name":"fw","firmware":[` + entry("a//b") + `]}`, "not clean"},
		{"updates", `{"version":1,"name":"fw","firmware":[` + entry("updates/x.bin") + `]}`, "kairos#4290"},
		{"duplicate", `{"version":1,"name":"fw","firmware":[` + entry("a.bin") + `,` + entry("a.bin") + `]}`, "firmware[1].path \"a.bin\" duplicates firmware[0]"},
		{"sha", `{"version":1,"name":"fw","firmware":[{"path":"a","sha256":"ABC","size":1}]}`, "64 lowercase hex"},
		{"size", `{"version":1,"name":"fw","firmware":[{"path":"a","sha256":"` + sum + `","size":-1}]}`, "size is -1"},
		{"module name", `{"version":1,"name":"fw","modules":[{"name":"a b"}]}`, "modules[0].name"},
		{"module dup", `{"version":1,"name":"fw","modules":[{"name":"a-b"},{"name":"a_b"}]}`, "duplicates modules[0]"},
		{"alias", `{"version":1,"name":"fw","modules":[{"name":"m","aliases":[""]}]}`, "aliases[0]"},
		{"module firmware", `{"version":1,"name":"fw","modules":[{"name":"m","firmware":["../x"]}]}`, "firmware[0]"},
	} {
		_, err := ParseManifest([]byte(tc.json), "fw")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}
