package install

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileInstallLaysOutTheStoreAsKairosAgent checks the layout `kairos-agent sysext install`
// and `enable --common` leave: the image flat in the store under the URI's file name, the
// enable link in common/ pointing at its absolute path, and nothing else.
func TestFileInstallLaysOutTheStoreAsKairosAgent(t *testing.T) {
	root := t.TempDir()
	img := writeFile(t, t.TempDir(), "linux-firmware-realtek.sysext.raw", []byte("squashfs image"))
	res, err := Install(context.Background(), "file:"+img, Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{
		URI:    "file:" + img,
		File:   "/var/lib/kairos/extensions/linux-firmware-realtek.sysext.raw",
		Link:   "/var/lib/kairos/extensions/common/linux-firmware-realtek.sysext.raw",
		SHA256: sum([]byte("squashfs image")),
		Bytes:  14,
	}
	if *res != want {
		t.Errorf("result %+v, want %+v", *res, want)
	}
	store := filepath.Join(root, "var/lib/kairos/extensions")
	got := snapshot(t, store)
	if len(got) != 4 || got["common/linux-firmware-realtek.sysext.raw"] != "link /var/lib/kairos/extensions/linux-firmware-realtek.sysext.raw" ||
		!strings.HasPrefix(got["linux-firmware-realtek.sysext.raw"], "file "+want.SHA256) {
		t.Errorf("store holds %v", got)
	}
	fi, err := os.Stat(filepath.Join(store, "linux-firmware-realtek.sysext.raw"))
	must(t, err)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("image mode %v, want 0644", fi.Mode().Perm())
	}
}

// TestInstallIsIdempotent installs the same image twice (the second time nothing is
// rewritten), then an image of the same name with other content (replaced in place).
func TestInstallIsIdempotent(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	img := writeFile(t, dir, "fw.raw", []byte("version 1"))
	first, err := Install(context.Background(), img, Options{Root: root, Profile: "active"})
	must(t, err)
	if first.Unchanged || first.Link != "/var/lib/kairos/extensions/active/fw.raw" {
		t.Fatalf("first install %+v", first)
	}
	store := filepath.Join(root, "var/lib/kairos/extensions")
	before := snapshot(t, store)
	statBefore, err := os.Stat(filepath.Join(store, "fw.raw"))
	must(t, err)

	again, err := Install(context.Background(), img, Options{Root: root, Profile: "active"})
	must(t, err)
	if !again.Unchanged {
		t.Errorf("second install of the same image: unchanged = false")
	}
	assertUntouched(t, before, store)
	statAfter, err := os.Stat(filepath.Join(store, "fw.raw"))
	must(t, err)
	if !os.SameFile(statBefore, statAfter) {
		t.Errorf("the image was rewritten although its content was the same")
	}

	must(t, os.WriteFile(img, []byte("version 2, longer"), 0o600))
	replaced, err := Install(context.Background(), img, Options{Root: root, Profile: "active"})
	must(t, err)
	if replaced.Unchanged || replaced.SHA256 != sum([]byte("version 2, longer")) {
		t.Errorf("replacing install %+v", replaced)
	}
	data, err := os.ReadFile(filepath.Join(store, "fw.raw"))
	must(t, err)
	if string(data) != "version 2, longer" {
		t.Errorf("store has %q after the replacement", data)
	}
	if entries, _ := os.ReadDir(store); len(entries) != 2 { // fw.raw, active/
		t.Errorf("store entries %v: temporary files left?", entries)
	}
}

// TestEnableReplacesAWrongLink points an existing enable link elsewhere; install puts it right.
func TestEnableReplacesAWrongLink(t *testing.T) {
	root := seededRoot(t)
	link := filepath.Join(root, "var/lib/kairos/extensions/common/old.sysext.raw")
	must(t, os.Remove(link))
	must(t, os.Symlink("/elsewhere/old.sysext.raw", link))
	img := writeFile(t, t.TempDir(), "old.sysext.raw", []byte("old image"))
	res, err := Install(context.Background(), img, Options{Root: root})
	must(t, err)
	if res.Unchanged {
		t.Error("unchanged although the link was rewritten")
	}
	if target, _ := os.Readlink(link); target != "/var/lib/kairos/extensions/old.sysext.raw" {
		t.Errorf("link points at %q", target)
	}
}

// TestChecksumMismatchLeavesTheStoreUntouched: a wrong --sha256 or catalog entry writes
// nothing, into a store that has images or into a root that has no store yet.
func TestChecksumMismatchLeavesTheStoreUntouched(t *testing.T) {
	img := writeFile(t, t.TempDir(), "fw.sysext.raw", []byte("the image"))
	catalog := writeFile(t, t.TempDir(), "catalog.json", []byte(`{"images":[{"name":"fw","file":"out/fw.sysext.raw","sha256":"`+sum([]byte("another image"))+`"}]}`))
	c, err := LoadCatalog(catalog)
	must(t, err)
	for name, opts := range map[string]Options{
		"sha256":  {SHA256: sum([]byte("another image"))},
		"catalog": {Catalog: c},
	} {
		t.Run(name, func(t *testing.T) {
			for _, root := range []string{seededRoot(t), t.TempDir()} {
				before := snapshot(t, root)
				opts.Root = root
				_, err := Install(context.Background(), img, opts)
				if !errors.Is(err, ErrChecksum) {
					t.Fatalf("error %v, want a checksum mismatch", err)
				}
				assertUntouched(t, before, root)
			}
		})
	}
}

// TestCatalogVerifiesByFileName installs with a catalog that names the image by its file.
func TestCatalogVerifiesByFileName(t *testing.T) {
	img := writeFile(t, t.TempDir(), "fw.sysext.raw", []byte("the image"))
	catalog := writeFile(t, t.TempDir(), "catalog.json", []byte(`[{"name":"other","file":"other.sysext.raw","sha256":"`+sum([]byte("x"))+`"},
		{"name":"fw","file":"build/fw.sysext.raw","sha256":"sha256:`+strings.ToUpper(sum([]byte("the image")))+`"}]`))
	c, err := LoadCatalog(catalog)
	must(t, err)
	if _, err := Install(context.Background(), img, Options{Root: t.TempDir(), Catalog: c}); err != nil {
		t.Fatal(err)
	}
	root := seededRoot(t)
	before := snapshot(t, root)
	missing := writeFile(t, t.TempDir(), "unlisted.sysext.raw", []byte("x"))
	if _, err := Install(context.Background(), missing, Options{Root: root, Catalog: c}); err == nil || !strings.Contains(err.Error(), "no entry for unlisted.sysext.raw") {
		t.Errorf("an image the catalog does not list: %v", err)
	}
	assertUntouched(t, before, root)
}

// TestRefusedNamesAndSources fail before anything is fetched or written.
func TestRefusedNamesAndSources(t *testing.T) {
	root := seededRoot(t)
	before := snapshot(t, root)
	dir := t.TempDir()
	for uri, want := range map[string]string{
		writeFile(t, dir, "fw.img", nil):        "does not end in .raw",
		writeFile(t, dir, ".hidden.raw", nil):   "starts with '.'",
		"ftp://example.org/fw.raw":              "unsupported scheme",
		"file://host/fw.raw":                    "only local files",
		"http://127.0.0.1:1/":                   "no image file name",
		"oci:Upper/Case:v1":                     "repository",
		"oci:repo@sha256:1234":                  "digest",
		filepath.Join(dir, "missing.raw"):       "no such file",
		"file:" + filepath.Join(dir, "nothere"): "does not end in .raw",
	} {
		_, err := Install(context.Background(), uri, Options{Root: root})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", uri, err, want)
		}
	}
	if _, err := Install(context.Background(), writeFile(t, dir, "ok.raw", nil), Options{Root: root, Profile: "boot"}); err == nil {
		t.Error("profile boot accepted")
	}
	assertUntouched(t, before, root)
}
