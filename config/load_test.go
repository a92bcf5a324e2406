package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twpayne/go-vfs/v4/vfst"
)

// precedenceTree has a file in every configuration directory. Each directory wins at least one
// key over the earlier ones and loses at least one to a later one.
func precedenceTree() map[string]any {
	return map[string]any{
		"/system/oem/00_image.yaml": `#cloud-config
firmware:
  auto: false
  signatures: ignore
  stores: [/system/extensions]
  extensions:
    - name: from-system-oem
  reprobe:
    mode: matched
    attempts: 2
    timeout: 1s
    exclude: ["0000:00:1f.2"]
`,
		"/run/initramfs/live/cloud-config.yaml": `#cloud-config
firmware:
  stores: [/run/live-extensions, /system/extensions]
  reprobe:
    attempts: 4
`,
		"/etc/kairos/kairos.yaml": `#cloud-config
firmware:
  extensions:
    - name: from-etc-kairos
      when: [{usb: "2357:011e"}]
  reprobe:
    attempts: 5
    timeout: 20s
`,
		"/usr/local/cloud-config/90_custom.yaml": `#cloud-config
firmware:
  signatures: required
  reprobe:
    mode: "off"
    attempts: 6
`,
		"/oem/10_a.yaml": `#cloud-config
firmware:
  reprobe:
    mode: failed
`,
		"/oem/50_dir/x.yml": `#cloud-config
firmware:
  extensions:
    - name: from-oem-subdir
`,
		"/oem/90_z.yaml": `#cloud-config
firmware:
  stores: [/oem/extensions]
  reprobe:
    attempts: 7
`,
		"/oem/91_no_header.yaml":     "firmware:\n  auto: true\n",
		"/oem/92_late_header.yaml":   "# written by the installer\n\n#cloud-config\nfirmware:\n  install: [\"oci:quay.io/kairos/realtek:v1\"]\n",
		"/oem/93_kairos_header.yaml": "#kairos-config\nfirmware:\n  reprobe:\n    force: [\"1-2\"]\n",
		"/oem/94_other_keys.yaml":    "#cloud-config\nusers:\n  - name: kairos\nstages: {initramfs: [{name: x}]}\n",
		"/oem/README.txt":            "#cloud-config\nfirmware:\n  auto: true\n",
		"/oem/UPPER.YAML":            "#cloud-config\nfirmware:\n  auto: true\n",
	}
}

func precedenceWant() *Config {
	return &Config{
		Auto:         false,
		Signatures:   SignaturesRequired,
		Certificates: []string{},
		Stores:       []string{"/system/extensions", "/run/live-extensions", "/oem/extensions"},
		Extensions: []Extension{
			{Name: "from-system-oem"},
			{Name: "from-etc-kairos", When: []Match{{USB: &IDPattern{Vendor: "2357", Product: "011e"}}}},
			{Name: "from-oem-subdir"},
		},
		Reprobe: Reprobe{
			Mode:     ReprobeFailed,
			Exclude:  []string{"0000:00:1f.2"},
			Force:    []string{"1-2"},
			Attempts: 7,
			Timeout:  Duration(20 * time.Second),
		},
		Install: []string{"oci:quay.io/kairos/realtek:v1"},
	}
}

func TestLoadMergeOrder(t *testing.T) {
	c, sources, errs := Load(newRoot(t, precedenceTree()), nil)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	if want := precedenceWant(); !reflect.DeepEqual(c, want) {
		t.Errorf("config:\n got %+v\nwant %+v", c, want)
	}
	wantSources := []Source{
		{Path: "/system/oem/00_image.yaml", Firmware: true},
		{Path: "/run/initramfs/live/cloud-config.yaml", Firmware: true},
		{Path: "/etc/kairos/kairos.yaml", Firmware: true},
		{Path: "/usr/local/cloud-config/90_custom.yaml", Firmware: true},
		{Path: "/oem/10_a.yaml", Firmware: true},
		{Path: "/oem/50_dir/x.yml", Firmware: true},
		{Path: "/oem/90_z.yaml", Firmware: true},
		{Path: "/oem/91_no_header.yaml", Skipped: "no #cloud-config header"},
		{Path: "/oem/92_late_header.yaml", Firmware: true},
		{Path: "/oem/93_kairos_header.yaml", Firmware: true},
		{Path: "/oem/94_other_keys.yaml"},
	}
	if !reflect.DeepEqual(sources, wantSources) {
		t.Errorf("sources:\n got %+v\nwant %+v", sources, wantSources)
	}
}

func TestLoadCmdlineAndExtraFiles(t *testing.T) {
	tree := precedenceTree()
	tree["/proc/cmdline"] = "BOOT_IMAGE=/boot/vmlinuz console=ttyS0 firmware.reprobe.mode=off firmware.auto firmware.reprobe.timeout=30s\n"
	extra := filepath.Join(t.TempDir(), "override.yaml")
	// No header: a file named by the caller is taken as it is.
	if err := os.WriteFile(extra, []byte("firmware:\n  reprobe:\n    mode: matched\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, sources, errs := Load(newRoot(t, tree), []string{extra})
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	want := precedenceWant()
	want.Auto = true                                  // command line over every file
	want.Reprobe.Timeout = Duration(30 * time.Second) // command line over /etc/kairos
	want.Reprobe.Mode = ReprobeMatched                // extra file over the command line
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config:\n got %+v\nwant %+v", c, want)
	}
	tail := sources[len(sources)-2:]
	wantTail := []Source{{Path: "/proc/cmdline", Firmware: true}, {Path: extra, Firmware: true}}
	if !reflect.DeepEqual(tail, wantTail) {
		t.Errorf("last sources:\n got %+v\nwant %+v", tail, wantTail)
	}
}

func TestLoadNoSources(t *testing.T) {
	c, sources, errs := Load(newRoot(t, map[string]any{"/etc/hostname": "kairos\n"}), nil)
	if len(errs) > 0 || len(sources) > 0 {
		t.Fatalf("got errors %q, sources %+v; want none", messages(errs), sources)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("config %+v, want the defaults", c)
	}
}

func TestLoadErrorsGiveDefaults(t *testing.T) {
	tree := precedenceTree()
	tree["/oem/95_bad.yaml"] = "#cloud-config\nfirmware:\n  reprobe:\n    mode: sometimes\n"
	tree["/etc/kairos/99_bad.yaml"] = "#cloud-config\nfirmware:\n  auto: perhaps\n"
	tree["/proc/cmdline"] = "firmware.reprobe.attempts=0\n"
	c, sources, errs := Load(newRoot(t, tree), nil)
	want := []string{
		`/etc/kairos/99_bad.yaml:3:9: firmware.auto: expected a boolean (true or false), got a string (value "perhaps")`,
		`/oem/95_bad.yaml:4:11: firmware.reprobe.mode: unknown mode; want failed, matched or off (value "sometimes")`,
		`/proc/cmdline:1:27: firmware.reprobe.attempts: attempts must be 1..10 (value "0", token "firmware.reprobe.attempts=0")`,
	}
	if got := messages(errs); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("config %+v, want the defaults", c)
	}
	if len(sources) != 14 {
		t.Errorf("got %d sources, want the 11 files, 2 bad files and /proc/cmdline: %+v", len(sources), sources)
	}
}

func TestLoadLaterNullResets(t *testing.T) {
	tree := precedenceTree()
	// Kairos' deep merge: a later null resets the key; here the whole block.
	tree["/oem/99_reset.yaml"] = "#cloud-config\nfirmware:\n"
	tree["/proc/cmdline"] = "firmware.reprobe.attempts=9 firmware.stores=[/cmdline]"
	c, _, errs := Load(newRoot(t, tree), nil)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	want := Defaults()
	want.Reprobe.Attempts = 9
	want.Stores = []string{"/cmdline"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config:\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadListMerge(t *testing.T) {
	c, _, errs := Load(newRoot(t, map[string]any{
		"/etc/kairos/a.yaml": "#cloud-config\nfirmware:\n  stores: [/a, /b]\n  reprobe: {exclude: [x, y]}\n  extensions: [{name: n, when: [{usb: \"1234:*\"}]}]\n",
		"/oem/a.yaml":        "#cloud-config\nfirmware:\n  stores: [/b, /c]\n  reprobe: {exclude: ~, force: [z]}\n  extensions: [{name: n, when: [{pci: \"8086:*\"}]}]\n",
		"/oem/b.yaml":        "#cloud-config\nfirmware:\n  reprobe: {exclude: [w]}\n",
	}), nil)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	// Lists of strings are united in order; a null list is emptied; lists of mappings are
	// concatenated, so a rule name repeated across files adds alternatives.
	wantStores := []string{"/a", "/b", "/c"}
	wantExclude := []string{"w"}
	wantRules := []Extension{
		{Name: "n", When: []Match{{USB: &IDPattern{Vendor: "1234", Product: "*"}}}},
		{Name: "n", When: []Match{{PCI: &IDPattern{Vendor: "8086", Product: "*"}}}},
	}
	if !reflect.DeepEqual(c.Stores, wantStores) || !reflect.DeepEqual(c.Reprobe.Exclude, wantExclude) || !reflect.DeepEqual(c.Extensions, wantRules) {
		t.Errorf("got stores %q, exclude %q, rules %+v; want %q, %q, %+v", c.Stores, c.Reprobe.Exclude, c.Extensions, wantStores, wantExclude, wantRules)
	}
}

func TestLoadConflictAcrossFiles(t *testing.T) {
	c, _, errs := Load(newRoot(t, map[string]any{
		"/etc/kairos/a.yaml": "#cloud-config\nfirmware:\n  reprobe:\n    exclude: [\"0000:00:1f.2\"]\n",
		"/oem/b.yaml":        "#cloud-config\nfirmware:\n  reprobe:\n    force: [\"0000:00:14.0\", \"0000:00:1f.2\"]\n",
	}), nil)
	want := []string{`/oem/b.yaml:4:29: firmware.reprobe.force[1]: device is also in reprobe.exclude (/etc/kairos/a.yaml:4:15); list it in one of the two (value "0000:00:1f.2")`}
	if got := messages(errs); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("config %+v, want the defaults", c)
	}
}

func TestLoadTooLarge(t *testing.T) {
	big := "#cloud-config\n" + strings.Repeat("#", MaxFileSize-len("#cloud-config\n")+1)
	c, sources, errs := Load(newRoot(t, map[string]any{
		"/oem/big.yaml": big,
		// Exactly 1 MiB is allowed.
		"/oem/limit.yaml": "#cloud-config\nfirmware: {auto: false}\n" + strings.Repeat("#", MaxFileSize-len("#cloud-config\nfirmware: {auto: false}\n")),
	}), nil)
	want := []string{`/oem/big.yaml: file is 1048577 bytes, more than the 1048576 bytes (1 MiB) Kairos reads from a cloud-config`}
	if got := messages(errs); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	wantSources := []Source{{Path: "/oem/big.yaml", Skipped: "larger than 1 MiB"}, {Path: "/oem/limit.yaml", Firmware: true}}
	if !reflect.DeepEqual(sources, wantSources) {
		t.Errorf("sources:\n got %+v\nwant %+v", sources, wantSources)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("config %+v, want the defaults", c)
	}
}

func TestLoadSymlinks(t *testing.T) {
	c, sources, errs := Load(newRoot(t, map[string]any{
		// The top directory is followed when it is a link ...
		"/sysroot/oem/90.yaml": "#cloud-config\nfirmware:\n  auto: false\n",
		"/oem":                 &vfst.Symlink{Target: "sysroot/oem"},
		// ... a linked directory below it is not, as with filepath.Walk in Kairos.
		"/elsewhere/91.yaml":   "#cloud-config\nfirmware:\n  signatures: ignore\n",
		"/sysroot/oem/linked":  &vfst.Symlink{Target: "../../elsewhere"},
		"/sysroot/oem/92.yaml": &vfst.Symlink{Target: "../../elsewhere/91.yaml"},
	}), nil)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	want := Defaults()
	want.Auto = false
	want.Signatures = SignaturesIgnore // through the file link 92.yaml
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config:\n got %+v\nwant %+v", c, want)
	}
	wantSources := []Source{{Path: "/oem/90.yaml", Firmware: true}, {Path: "/oem/92.yaml", Firmware: true}}
	if !reflect.DeepEqual(sources, wantSources) {
		t.Errorf("sources:\n got %+v\nwant %+v", sources, wantSources)
	}
}

func TestLoadDocumentShapes(t *testing.T) {
	c, sources, errs := Load(newRoot(t, map[string]any{
		"/oem/a_list.yaml":    "#cloud-config\n- firmware: {auto: false}\n",
		"/oem/b_empty.yaml":   "#cloud-config\n",
		"/oem/c_multi.yaml":   "#cloud-config\nfirmware: {signatures: ignore}\n---\nfirmware: {signatures: required}\n",
		"/oem/d_broken.yaml":  "#cloud-config\nusers: [\n",
		"/oem/e_scalar.yaml":  "#cloud-config\njust text\n",
		"/oem/f_crlf.yaml":    "#cloud-config\r\nfirmware:\r\n  reprobe: {attempts: 2}\r\n",
		"/oem/g_missing.yaml": &vfst.Symlink{Target: "nowhere.yaml"},
	}), nil)
	want := []string{
		`/oem/d_broken.yaml:2: invalid YAML: did not find expected node content`,
		`/oem/g_missing.yaml: cannot read: no such file or directory`,
	}
	if got := messages(errs); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	wantSources := []Source{
		{Path: "/oem/a_list.yaml"},
		{Path: "/oem/b_empty.yaml"},
		{Path: "/oem/c_multi.yaml", Firmware: true},
		{Path: "/oem/d_broken.yaml", Skipped: "invalid YAML"},
		{Path: "/oem/e_scalar.yaml"},
		{Path: "/oem/f_crlf.yaml", Firmware: true},
		{Path: "/oem/g_missing.yaml", Skipped: "cannot read"},
	}
	if !reflect.DeepEqual(sources, wantSources) {
		t.Errorf("sources:\n got %+v\nwant %+v", sources, wantSources)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("config %+v, want the defaults", c)
	}
}

func TestLoadFirstDocumentOnly(t *testing.T) {
	c, _, errs := Load(newRoot(t, map[string]any{
		"/oem/multi.yaml": "#cloud-config\nfirmware: {signatures: ignore}\n---\nfirmware: {signatures: required}\n",
		"/oem/crlf.yaml":  "#cloud-config\r\nfirmware:\r\n  reprobe: {attempts: 2}\r\n",
	}), nil)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	if c.Signatures != SignaturesIgnore || c.Reprobe.Attempts != 2 {
		t.Errorf("got signatures %q, attempts %d; want ignore (first document) and 2 (CRLF file)", c.Signatures, c.Reprobe.Attempts)
	}
}

func TestLoadMissingExtraFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	_, _, errs := Load(newRoot(t, map[string]any{}), []string{missing})
	want := []string{missing + ": cannot read: no such file or directory"}
	if got := messages(errs); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestValidateFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "#cloud-config\nfirmware:\n  reprobe:\n    exclude: [\"1-2\"]\n")
	noHeader := write("no-header.yaml", "firmware:\n  auto: nope\n")
	wrongExt := write("firmware.conf", "#cloud-config\nfirmware:\n  reprobe:\n    force: [\"1-2\"]\n")
	// The root is not read when files are named.
	root := newRoot(t, map[string]any{"/oem/bad.yaml": "#cloud-config\nfirmware: {auto: nope}\n"})
	got := messages(Validate(root, []string{good, noHeader, wrongExt}))
	want := []string{
		noHeader + ": no #cloud-config header in the first lines; Kairos skips this file",
		noHeader + `:2:9: firmware.auto: expected a boolean (true or false), got a string (value "nope")`,
		wrongExt + ": Kairos reads only .yaml and .yml files from its configuration directories",
		wrongExt + `:4:13: firmware.reprobe.force[0]: device is also in reprobe.exclude (` + good + `:4:15); list it in one of the two (value "1-2")`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	if errs := Validate(root, []string{good}); len(errs) > 0 {
		t.Errorf("valid file: unexpected errors %q", messages(errs))
	}
}

func TestValidateKairosSet(t *testing.T) {
	tree := precedenceTree()
	if errs := Validate(newRoot(t, tree), nil); len(errs) > 0 {
		t.Fatalf("unexpected errors: %q", messages(errs))
	}
	tree["/run/initramfs/live/bad.yaml"] = "#cloud-config\nfirmware:\n  stores: relative\n"
	tree["/proc/cmdline"] = "quiet firmware.signatures=maybe"
	want := []string{
		`/run/initramfs/live/bad.yaml:3:11: firmware.stores: expected a list, got a string (value "relative")`,
		`/proc/cmdline:1:27: firmware.signatures: unknown signature policy; want auto, required or ignore (value "maybe", token "firmware.signatures=maybe")`,
	}
	if got := messages(Validate(newRoot(t, tree), nil)); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestLoadOddFileTypes(t *testing.T) {
	root := newRoot(t, map[string]any{
		"/oem":                        "#cloud-config\nfirmware: {auto: false}\n", // a file where a directory is expected
		"/etc/kairos/dir.yaml/x":      "not read through the directory named like a file",
		"/etc/kairos/dir.yaml/y.yaml": "#cloud-config\nfirmware: {signatures: ignore}\n",
		"/proc/cmdline/x":             "a directory where a file is expected",
	})
	c, sources, errs := Load(root, nil)
	want := []string{"/proc/cmdline: cannot read: is a directory"}
	if got := messages(errs); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	// A directory named like a file is walked like any directory.
	wantSources := []Source{{Path: "/etc/kairos/dir.yaml/y.yaml", Firmware: true}, {Path: "/proc/cmdline", Skipped: "cannot read"}}
	if !reflect.DeepEqual(sources, wantSources) {
		t.Errorf("sources:\n got %+v\nwant %+v", sources, wantSources)
	}
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("config %+v, want the defaults", c)
	}
	// validate names a directory: not a regular file.
	dir := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want = []string{dir + ": not a regular file"}
	if got := messages(Validate(root, []string{dir})); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
}
