package config

import (
	"reflect"
	"testing"
	"time"
)

func TestSplitCmdline(t *testing.T) {
	got := splitCmdline("  BOOT_IMAGE=/vmlinuz \"firmware.reprobe.mode=off\"\tkairos.config=\"firmware.stores=[/a, /b]\" a=\"b c\"d\n")
	want := []cmdlineToken{
		{Text: "BOOT_IMAGE=/vmlinuz", Offset: 2},
		{Text: `"firmware.reprobe.mode=off"`, Offset: 22},
		{Text: `kairos.config="firmware.stores=[/a, /b]"`, Offset: 50},
		{Text: `a="b c"d`, Offset: 91},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokens:\n got %+v\nwant %+v", got, want)
	}
}

// loadCmdline loads a tree with a base file and the given command line.
func loadCmdline(t *testing.T, cmdline string) (*Config, []Source, []Error) {
	t.Helper()
	return Load(newRoot(t, map[string]any{
		"/oem/90.yaml":  "#cloud-config\nfirmware:\n  auto: false\n  stores: [/file]\n  reprobe:\n    mode: matched\n",
		"/proc/cmdline": cmdline,
	}), nil)
}

func TestCmdlineOverrides(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		edit    func(c *Config)
	}{
		{"no firmware tokens", "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE firmware_class.path=/run/fw cos.setup=http://x/c.yaml", func(c *Config) {}},
		{"boolean", "firmware.auto=true", func(c *Config) { c.Auto = true }},
		{"bare key is true", "quiet firmware.auto", func(c *Config) { c.Auto = true }},
		{"string", "firmware.reprobe.mode=off", func(c *Config) { c.Reprobe.Mode = ReprobeOff }},
		{"integer", "firmware.reprobe.attempts=5", func(c *Config) { c.Reprobe.Attempts = 5 }},
		{"duration", "firmware.reprobe.timeout=1m", func(c *Config) { c.Reprobe.Timeout = Duration(time.Minute) }},
		{"quoted token", `"firmware.reprobe.timeout=2s"`, func(c *Config) { c.Reprobe.Timeout = Duration(2 * time.Second) }},
		{"flow list is united with the file's", "firmware.stores=[/a,/file]", func(c *Config) { c.Stores = []string{"/file", "/a"} }},
		{"null empties a list", "firmware.stores=", func(c *Config) { c.Stores = []string{} }},
		{"numeric segments index lists", "firmware.extensions.0.name=realtek firmware.extensions.0.when.0.usb=2357:011e firmware.extensions.0.when.1.pci=10ec:*",
			func(c *Config) {
				c.Extensions = []Extension{{Name: "realtek", When: []Match{
					{USB: &IDPattern{Vendor: "2357", Product: "011e"}},
					{PCI: &IDPattern{Vendor: "10ec", Product: "*"}},
				}}}
			}},
		{"mapping value", `"firmware.reprobe={mode: failed, exclude: [0000:00:1f.2]}"`, func(c *Config) {
			c.Reprobe.Mode = ReprobeFailed
			c.Reprobe.Exclude = []string{"0000:00:1f.2"}
		}},
		{"later token wins", "firmware.reprobe.mode=off firmware.reprobe.mode=failed", func(c *Config) { c.Reprobe.Mode = ReprobeFailed }},
		{"kairos.config", "kairos.config=firmware.signatures=ignore", func(c *Config) { c.Signatures = SignaturesIgnore }},
		{"kairos.config bare key", "kairos.config=firmware.auto", func(c *Config) { c.Auto = true }},
		{"kairos.config wins over a plain token in any order", "kairos.config=firmware.reprobe.mode=failed firmware.reprobe.mode=off", func(c *Config) { c.Reprobe.Mode = ReprobeFailed }},
		{"legacy cos.setup", "cos.setup=firmware.reprobe.attempts=2", func(c *Config) { c.Reprobe.Attempts = 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, errs := loadCmdline(t, tt.cmdline)
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %q", messages(errs))
			}
			want := Defaults()
			want.Auto = false
			want.Stores = []string{"/file"}
			want.Reprobe.Mode = ReprobeMatched
			tt.edit(want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("config:\n got %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestCmdlineSource(t *testing.T) {
	_, sources, _ := loadCmdline(t, "quiet splash")
	want := []Source{{Path: "/oem/90.yaml", Firmware: true}, {Path: "/proc/cmdline"}}
	if !reflect.DeepEqual(sources, want) {
		t.Errorf("sources:\n got %+v\nwant %+v", sources, want)
	}
}

func TestCmdlineErrors(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		want    []string
	}{
		{
			name:    "unknown key",
			cmdline: "quiet firmware.reprobe.retries=3",
			want:    []string{`/proc/cmdline:1:24: firmware.reprobe.retries: unknown key; want one of mode, exclude, force, attempts, timeout (value "retries", token "firmware.reprobe.retries=3")`},
		},
		{
			name:    "bad value",
			cmdline: "quiet firmware.reprobe.mode=of",
			want:    []string{`/proc/cmdline:1:29: firmware.reprobe.mode: unknown mode; want failed, matched or off (value "of", token "firmware.reprobe.mode=of")`},
		},
		{
			name:    "wrong type",
			cmdline: "firmware.auto=[1]",
			want:    []string{`/proc/cmdline:1:15: firmware.auto: expected a boolean (true or false), got a list (token "firmware.auto=[1]")`},
		},
		{
			name:    "empty segment",
			cmdline: "firmware..auto=false",
			want:    []string{`/proc/cmdline:1:10: firmware..auto: empty key segment (two dots in a row, or a dot at the end) (value "false", token "firmware..auto=false")`},
		},
		{
			name:    "trailing dot",
			cmdline: "root=/dev/sda firmware.=1",
			want:    []string{`/proc/cmdline:1:24: firmware.: empty key segment (two dots in a row, or a dot at the end) (value "1", token "firmware.=1")`},
		},
		{
			name:    "index too large",
			cmdline: "firmware.stores.256=/a",
			want:    []string{`/proc/cmdline:1:17: firmware.stores.256: list index 256 larger than 255 (value "/a", token "firmware.stores.256=/a")`},
		},
		{
			name:    "invalid YAML value",
			cmdline: "firmware.stores=[/a",
			want:    []string{`/proc/cmdline:1:17: firmware.stores: value is not valid YAML: line 1: did not find expected ',' or ']' (value "[/a", token "firmware.stores=[/a")`},
		},
		{
			name:    "list gap",
			cmdline: "firmware.stores.1=/a",
			want:    []string{`/proc/cmdline:1:17: firmware.stores[0]: expected a string, got null (token "firmware.stores.1=/a")`},
		},
		{
			name:    "firmware itself",
			cmdline: "firmware",
			want:    []string{`/proc/cmdline:1:1: firmware: expected a mapping, got a boolean (value "true", token "firmware")`},
		},
		{
			name:    "kairos.config value",
			cmdline: "kairos.config=firmware.reprobe.timeout=soon",
			want:    []string{`/proc/cmdline:1:40: firmware.reprobe.timeout: not a Go duration; want a number with a unit, like "10s" or "1m30s" (value "soon", token "kairos.config=firmware.reprobe.timeout=soon")`},
		},
		{
			name:    "error inside a mapping value",
			cmdline: `quiet "firmware.reprobe={mode: failed, attempts: 0}"`,
			want:    []string{`/proc/cmdline:1:50: firmware.reprobe.attempts: attempts must be 1..10 (value "0", token "\"firmware.reprobe={mode: failed, attempts: 0}\"")`},
		},
		{
			name:    "errors of both families are all collected",
			cmdline: "firmware.auto=no-thanks kairos.config=firmware.signatures=weak",
			want: []string{
				`/proc/cmdline:1:15: firmware.auto: expected a boolean (true or false), got a string (value "no-thanks", token "firmware.auto=no-thanks")`,
				`/proc/cmdline:1:59: firmware.signatures: unknown signature policy; want auto, required or ignore (value "weak", token "kairos.config=firmware.signatures=weak")`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, errs := loadCmdline(t, tt.cmdline)
			if got := messages(errs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
			if !reflect.DeepEqual(c, Defaults()) {
				t.Errorf("config with errors is not the defaults: %+v", c)
			}
		})
	}
}
