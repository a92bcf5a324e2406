package prune

import (
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"
)

func TestPruneFollowsLinksInsideTheFirmwareDirectoryOnly(t *testing.T) {
	fw := "/usr/lib/firmware/"
	root := newRoot(t, map[string]any{
		"/lib":                 &vfst.Symlink{Target: "usr/lib"}, // merged /usr
		"/etc/hostname":        "host",
		fw + "regulatory.db":   "db",
		fw + "alias.bin":       &vfst.Symlink{Target: "regulatory.db"}, // not asked for, but its target stays
		fw + "link-kept.bin":   &vfst.Symlink{Target: "real/target.bin"},
		fw + "real/target.bin": "target",
		fw + "real/other.bin":  "other",
		fw + "stale.bin":       &vfst.Symlink{Target: "gone/x.bin"}, // its target goes, so does it
		fw + "gone/x.bin":      "x",
		fw + "chain.bin":       &vfst.Symlink{Target: "hop.bin"},
		fw + "hop.bin":         &vfst.Symlink{Target: "deep/file.bin"},
		fw + "deep/file.bin":   "file",
		fw + "vendor-alias":    &vfst.Symlink{Target: "vendor"},
		fw + "vendor/a.bin":    "a",
		fw + "vendor/b/c.bin":  "c",
		fw + "via.bin":         &vfst.Symlink{Target: "dirlink/f.bin"}, // through a directory link
		fw + "dirlink":         &vfst.Symlink{Target: "realdir"},
		fw + "realdir/f.bin":   "f",
		fw + "realdir/o.bin":   "o",
		fw + "outside-rel.bin": &vfst.Symlink{Target: "../../../etc/hostname"},
		fw + "broken.bin":      &vfst.Symlink{Target: "nothing.bin"},
		fw + "loop-a":          &vfst.Symlink{Target: "loop-b"},
		fw + "loop-b":          &vfst.Symlink{Target: "loop-a"},
		fw + "selfdir/x.bin":   "x",
		fw + "selfdir/again":   &vfst.Symlink{Target: "."},
		fw + "kept-broken.bin": &vfst.Symlink{Target: "missing.bin"},
	})
	makeLink(t, root, fw+"outside.bin", "/etc/hostname")
	makeLink(t, root, fw+"outside-broken.bin", "/opt/nothing")
	makeLink(t, root, fw+"abs.bin", "/lib/firmware/regulatory.db") // absolute, through /lib, back inside

	res, err := Plan(Options{Root: root, Keep: []string{
		"regulatory.db", "link-kept.bin", "chain.bin", "vendor-alias", "via.bin", "selfdir", "kept-broken.bin",
	}})
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "kept", res.Kept, []string{
		"abs.bin", "alias.bin", "chain.bin", "deep/file.bin", "dirlink", "hop.bin", "kept-broken.bin", "link-kept.bin",
		"outside-broken.bin", "outside-rel.bin", "outside.bin", "real/target.bin", "realdir/f.bin", "regulatory.db",
		"selfdir/again", "selfdir/x.bin", "vendor-alias", "vendor/a.bin", "vendor/b/c.bin", "via.bin",
	})
	assertEqual(t, "removed", removedPaths(res), []string{
		"broken.bin", "gone/x.bin", "loop-a", "loop-b", "real/other.bin", "realdir/o.bin", "stale.bin",
	})
	assertEqual(t, "removed dirs", res.RemovedDirs, []string{"gone"})
	assertEqual(t, "patterns", res.Patterns, []PatternResult{
		{"regulatory.db", 1}, {"link-kept.bin", 2}, {"chain.bin", 3}, {"vendor-alias", 3}, {"via.bin", 3},
		{"selfdir", 2}, {"kept-broken.bin", 1},
	})
	warnings := strings.Join(res.Warnings, "\n")
	for _, want := range []string{
		"link " + root.Real(fw+"outside-broken.bin") + " leads outside the firmware directory, to " + root.Real("/opt") + ": left alone",
		"link " + root.Real(fw+"outside-rel.bin") + " leads outside the firmware directory, to " + root.Real("/etc/hostname") + ": left alone",
		"link " + root.Real(fw+"outside.bin") + " leads outside the firmware directory, to " + root.Real("/etc/hostname") + ": left alone",
		"kept link " + root.Real(fw+"kept-broken.bin") + " is broken",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if len(res.Warnings) != 4 {
		t.Errorf("%d warnings, want 4:\n%s", len(res.Warnings), warnings)
	}

	if err := Apply(root, res, nil); err != nil {
		t.Fatal(err)
	}
	after := listTree(t, root, fw)
	if len(after) != len(res.Kept)+6 { // the kept entries and deep/, real/, realdir/, selfdir/, vendor/, vendor/b/
		t.Errorf("after Apply: %q", after)
	}
	if data, err := root.FS.ReadFile("/etc/hostname"); err != nil || string(data) != "host" {
		t.Errorf("the file a link outside leads to was touched: %q, %v", data, err)
	}
}
