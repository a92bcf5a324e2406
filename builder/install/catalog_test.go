package install

import (
	"strings"
	"testing"
)

// TestCatalogIsReadLoosely finds entries wherever they are and matches by file, then by name.
func TestCatalogIsReadLoosely(t *testing.T) {
	a, b := sum([]byte("a")), sum([]byte("b"))
	c, err := LoadCatalog(writeFile(t, t.TempDir(), "catalog.json", []byte(`{
		"version": 1, "generated": "today",
		"images": [{"name": "realtek", "file": "out/linux-firmware-realtek.sysext.raw", "sha256": "`+a+`", "bytes": 5}],
		"extra": {"nested": [{"name": "intel", "sha256": "sha256:`+b+`"}]}
	}`)))
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"linux-firmware-realtek.sysext.raw": a,
		"intel.sysext.raw":                  b,
		"intel.raw":                         b,
	} {
		if got, err := c.Lookup(file); err != nil || got != want {
			t.Errorf("%s: %s, %v", file, got, err)
		}
	}
	if _, err := c.Lookup("realtek.sysext.raw"); err != nil {
		t.Errorf("by name: %v", err)
	}
	if _, err := c.Lookup("amd.sysext.raw"); err == nil {
		t.Error("an unlisted image was found")
	}
	for content, want := range map[string]string{
		`[{"file": "x.raw"}]`:                  "no entry with a sha256",
		`{"a": `:                               "unexpected end",
		`[{"file": "x.raw", "sha256": "abc"}]`: "not 64 hex digits",
	} {
		c, err := LoadCatalog(writeFile(t, t.TempDir(), "c.json", []byte(content)))
		if err == nil {
			_, err = c.Lookup("x.raw")
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", content, err, want)
		}
	}
}
