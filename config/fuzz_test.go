package config

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// FuzzLoad feeds arbitrary file content and command lines to Load. Load must not panic, and
// must return either errors with the defaults, or a configuration that is valid: written back as
// a firmware block it loads again, without errors, to the same configuration.
func FuzzLoad(f *testing.F) {
	seeds := []struct{ content, cmdline string }{
		{"#cloud-config\nfirmware:\n  auto: true\n", ""},
		{"#cloud-config\nfirmware:\n  auto: false\n  signatures: required\n  stores: [/var/lib/kairos/extensions]\n" +
			"  extensions:\n    - name: linux-firmware-realtek\n      when:\n        - usb: \"2357:011e\"\n" +
			"        - pci: \"8086:*\"\n          class: \"0280\"\n        - modalias: \"pci:v00008086d*bc02sc80*\"\n" +
			"        - driver: iwlwifi\n        - dmi: {sys_vendor: \"LENOVO*\", product_name: \"20*\"}\n" +
			"  reprobe:\n    mode: matched\n    exclude: [\"0000:00:1f.2\"]\n    force: [\"1-2\"]\n    attempts: 5\n    timeout: 1m30s\n" +
			"  install: [\"oci:quay.io/kairos/realtek:v1\", \"https://example.org/x.raw\"]\n",
			"BOOT_IMAGE=/vmlinuz firmware.reprobe.mode=off kairos.config=firmware.auto=true"},
		{"#cloud-config\na: &a {name: x}\nfirmware:\n  extensions: [*a, *a]\n", "firmware.extensions.0.name=y"},
		{"#cloud-config\nfirmware:\n  <<: {auto: true}\n  auto: [\n", "\"firmware.stores=[/a, /b]\""},
		{"firmware: {reprobe: {attempts: 0, timeout: 0s}}", "firmware..x firmware.stores.999=/a"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.content), s.cmdline)
	}
	fs, cleanup, err := vfst.NewTestFS(map[string]any{"/oem": &vfst.Dir{Perm: 0o755}, "/proc": &vfst.Dir{Perm: 0o755}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(cleanup)
	root := hostfs.FromFS(fs.TempDir(), fs)
	load := func(t *testing.T, content []byte, cmdline string) (*Config, []Error) {
		if err := fs.WriteFile("/oem/90_fuzz.yaml", content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/proc/cmdline", []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
		c, _, errs := Load(root, nil)
		return c, errs
	}

	f.Fuzz(func(t *testing.T, content []byte, cmdline string) {
		c, errs := load(t, content, cmdline)
		if len(errs) > 0 {
			if !reflect.DeepEqual(c, Defaults()) {
				t.Fatalf("errors %q came with a configuration that is not the defaults: %+v", messages(errs), c)
			}
			for _, e := range errs {
				if (e.File != "/oem/90_fuzz.yaml" && e.File != CmdlinePath) || e.Message == "" {
					t.Fatalf("error without a source or message: %#v", e)
				}
			}
			return
		}
		block, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		// JSON is YAML flow notation.
		again, errs := load(t, append([]byte("#cloud-config\nfirmware: "), block...), "")
		if len(errs) > 0 {
			t.Fatalf("the loaded configuration %s does not load again: %q", block, messages(errs))
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("the loaded configuration changed when loaded again:\n first %+v\nsecond %+v", c, again)
		}
	})
}
