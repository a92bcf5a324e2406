package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsJSON(t *testing.T) {
	got, err := json.Marshal(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"auto":true,"signatures":"auto","certificates":[],"stores":[],"extensions":[],"reprobe":{"mode":"failed","exclude":[],"force":[],"attempts":3,"timeout":"10s"},"install":[]}`
	if string(got) != want {
		t.Errorf("Defaults() as JSON:\n got %s\nwant %s", got, want)
	}
}

func TestConfigJSON(t *testing.T) {
	c := Defaults()
	c.Extensions = []Extension{{Name: "realtek", When: []Match{
		{USB: &IDPattern{Vendor: "2357", Product: "011e"}},
		{PCI: &IDPattern{Vendor: "8086", Product: "*"}, Class: "0280"},
		{DMI: map[string]string{"sys_vendor": "LENOVO"}},
	}}}
	got, err := json.Marshal(c.Extensions)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"realtek","when":[{"usb":"2357:011e"},{"pci":"8086:*","class":"0280"},{"dmi":{"sys_vendor":"LENOVO"}}]}]`
	if string(got) != want {
		t.Errorf("extensions as JSON:\n got %s\nwant %s", got, want)
	}
}

func TestIDPatternMatches(t *testing.T) {
	tests := []struct {
		pattern         IDPattern
		vendor, product uint16
		want            bool
	}{
		{IDPattern{"2357", "011e"}, 0x2357, 0x011e, true},
		{IDPattern{"2357", "011e"}, 0x2357, 0x011f, false},
		{IDPattern{"2357", "*"}, 0x2357, 0xffff, true},
		{IDPattern{"*", "011e"}, 0x0bda, 0x011e, true},
		{IDPattern{"*", "011e"}, 0x0bda, 0x8179, false},
		{IDPattern{"*", "*"}, 0, 0, true},
		{IDPattern{"00ab", "*"}, 0xab, 1, true},
	}
	for _, tt := range tests {
		if got := tt.pattern.Matches(tt.vendor, tt.product); got != tt.want {
			t.Errorf("%s.Matches(%04x, %04x) = %v, want %v", tt.pattern, tt.vendor, tt.product, got, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "/oem/a.yaml", Line: 3, Column: 9, Key: "firmware.auto", Value: "maybe", Message: "expected a boolean"},
			`/oem/a.yaml:3:9: firmware.auto: expected a boolean (value "maybe")`},
		{Error{File: "/oem/a.yaml", Line: 4, Message: "invalid YAML: did not find expected key"},
			`/oem/a.yaml:4: invalid YAML: did not find expected key`},
		{Error{File: "/oem/big.yaml", Message: "too large"},
			`/oem/big.yaml: too large`},
		{Error{File: "/proc/cmdline", Line: 1, Column: 7, Key: "firmware", Token: "firmware", Message: "expected a mapping"},
			`/proc/cmdline:1:7: firmware: expected a mapping (token "firmware")`},
		{Error{File: "f", Line: 1, Column: 1, Key: "k", Value: strings.Repeat("é", 121), Message: "m"},
			`f:1:1: k: m (value "` + strings.Repeat("é", 120) + `...")`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error():\n got %s\nwant %s", got, tt.want)
		}
	}
}

func TestHasValidHeader(t *testing.T) {
	tests := []struct {
		data string
		want bool
	}{
		{"#cloud-config\nfirmware: {}\n", true},
		{"#cloud-config   \r\n", true},
		{"#kairos-config\n", true},
		{"#node-config\n", true},
		{"# comment\n## jinja\n\n\n\n\n\n\n#cloud-config\n", true}, // ninth line
		{"\n\n\n\n\n\n\n\n\n#cloud-config\nfirmware: {}\n", false}, // tenth line, not last
		{"#cloud-config-archive\n", false},                         // another cloud-init format
		{" #cloud-config\n", false},                                // leading space
		{"firmware: {}\n", false},
	}
	for _, tt := range tests {
		if got := hasValidHeader([]byte(tt.data)); got != tt.want {
			t.Errorf("hasValidHeader(%q) = %v, want %v", tt.data, got, tt.want)
		}
	}
}

func TestConfigJSONRoundTrips(t *testing.T) {
	c := Defaults()
	c.Extensions = []Extension{{Name: "fw", When: []Match{{USB: &IDPattern{Vendor: "2357", Product: "*"}}}}}
	c.Reprobe.Timeout = Duration(90 * time.Second)
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if !reflect.DeepEqual(&back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, *c)
	}
	var p IDPattern
	if err := p.UnmarshalText([]byte("2357")); err == nil {
		t.Error("an id pattern without ':' was accepted")
	}
}
