package tests

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/builder/prune"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// i915Bytes makes the one large file: 1.5 MiB.
const i915Bytes = 3 << 19

// prunableImage is an image root with a small linux-firmware and the Debian kernel's modules:
// bnx2 declares five firmware files (one is absent here, one is a link into another directory,
// one is shipped both .xz and .zst); e1000e declares none.
func prunableImage(t *testing.T) string {
	fw := "/usr/lib/firmware/"
	root := fakeRoot(t, map[string]any{
		fw + "regulatory.db":                  "db",
		fw + "regulatory.db.p7s":              "sig",
		fw + "regdb.bin":                      &vfst.Symlink{Target: "regulatory.db"},
		fw + "bnx2/bnx2-mips-09-6.2.1b.fw":    "mips09",
		fw + "bnx2/bnx2-mips-06-6.2.3.fw.xz":  "mips06xz",
		fw + "bnx2/bnx2-mips-06-6.2.3.fw.zst": "mips06zst",
		fw + "bnx2/bnx2-rv2p-09-6.0.17.fw":    &vfst.Symlink{Target: "../shared/rv2p-09.fw"},
		fw + "bnx2/bnx2-rv2p-09ax-6.0.17.fw":  "rv2p09ax",
		fw + "bnx2/bnx2-unlisted.fw":          "unlisted",
		fw + "shared/rv2p-09.fw":              "rv2p09",
		fw + "shared/unused.fw":               "unused",
		fw + "bnx2x/bnx2x-e1-7.13.1.0.fw":     "bnx2x",
		fw + "i915/adlp_dmc.bin":              strings.Repeat("i", i915Bytes),
		fw + "rtw88/rtw8821a_fw.bin":          "rtw",
		fw + "rtw8821a.bin":                   &vfst.Symlink{Target: "rtw88/rtw8821a_fw.bin"},
		"/lib":                                &vfst.Dir{Perm: 0o755},
	})
	if err := os.Symlink(filepath.Join(testkernel.Dir(t), "lib", "modules"), filepath.Join(root, "lib", "modules")); err != nil {
		t.Fatal(err)
	}
	return root
}

// firmwareListing lists DIR/usr/lib/firmware: "name/" for directories, "name -> target" for links.
func firmwareListing(t *testing.T, root string) []string {
	t.Helper()
	base := filepath.Join(root, "usr/lib/firmware")
	list := []string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == base {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			rel += " -> " + target
		} else if d.IsDir() {
			rel += "/"
		}
		list = append(list, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(list)
	return list
}

var pruneArgs = []string{"prune", "--keep-module", "bnx2", "--keep-module", "e1000e", "--keep", "regulatory*"}

func TestPruneKeepsTheInitramfsDriversFirmwareWithTheDebianKernel(t *testing.T) {
	root := prunableImage(t)
	before := firmwareListing(t, root)

	var dry prune.Result
	runJSON(t, &dry, append(pruneArgs, "--root", root, "--dry-run", "--json")...)
	if !dry.DryRun || len(dry.Removed) != 6 {
		t.Errorf("dry run: dry_run %v, %d removals", dry.DryRun, len(dry.Removed))
	}
	if got := firmwareListing(t, root); !reflect.DeepEqual(got, before) {
		t.Fatalf("--dry-run changed the tree:\n%q", got)
	}

	var res prune.Result
	stderr := runJSON(t, &res, append(pruneArgs, "--root", root, "--json")...)
	missing := "--keep-module bnx2: declared firmware bnx2/bnx2-rv2p-06-6.0.15.fw is not in " + filepath.Join(root, "usr/lib/firmware") + " (it was never there)"
	want := prune.Result{
		FirmwareDir:   "/usr/lib/firmware",
		KernelRelease: testkernel.Release, // the only kernel under lib/modules
		Removed: []prune.File{
			{Path: "bnx2/bnx2-unlisted.fw", Bytes: 8},
			{Path: "bnx2x/bnx2x-e1-7.13.1.0.fw", Bytes: 5},
			{Path: "i915/adlp_dmc.bin", Bytes: i915Bytes},
			{Path: "rtw88/rtw8821a_fw.bin", Bytes: 3},
			{Path: "rtw8821a.bin", Bytes: 0}, // its target goes
			{Path: "shared/unused.fw", Bytes: 6},
		},
		RemovedDirs: []string{"rtw88", "i915", "bnx2x"},
		Kept: []string{
			"bnx2/bnx2-mips-06-6.2.3.fw.xz", "bnx2/bnx2-mips-06-6.2.3.fw.zst", "bnx2/bnx2-mips-09-6.2.1b.fw",
			"bnx2/bnx2-rv2p-09-6.0.17.fw", "bnx2/bnx2-rv2p-09ax-6.0.17.fw",
			"regdb.bin", // its target stays
			"regulatory.db", "regulatory.db.p7s", "shared/rv2p-09.fw",
		},
		BytesRemoved: 8 + 5 + i915Bytes + 3 + 6,
		BytesKept:    int64(len("mips06xz" + "mips06zst" + "mips09" + "rv2p09ax" + "db" + "sig" + "rv2p09")),
		Patterns:     []prune.PatternResult{{Pattern: "regulatory*", Kept: 2}},
		Modules: []prune.ModuleResult{
			{
				Module: "bnx2",
				// In the order `modinfo -F firmware bnx2` prints them.
				Firmware: []string{"bnx2/bnx2-rv2p-09ax-6.0.17.fw", "bnx2/bnx2-rv2p-09-6.0.17.fw", "bnx2/bnx2-mips-09-6.2.1b.fw",
					"bnx2/bnx2-rv2p-06-6.0.15.fw", "bnx2/bnx2-mips-06-6.2.3.fw"},
				Missing: []string{"bnx2/bnx2-rv2p-06-6.0.15.fw"},
				Kept:    6,
			},
			{Module: "e1000e", Firmware: []string{}, Missing: []string{}, Kept: 0},
		},
		Warnings: []string{missing, "--keep-module e1000e declares no firmware: it keeps nothing"},
		DryRun:   false,
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("JSON result:\n got  %+v\n want %+v", res, want)
	}
	if !strings.Contains(stderr, "warning: "+missing+"\n") {
		t.Errorf("stderr lacks the missing firmware warning:\n%s", stderr)
	}
	wantTree := []string{
		"bnx2/", "bnx2/bnx2-mips-06-6.2.3.fw.xz", "bnx2/bnx2-mips-06-6.2.3.fw.zst", "bnx2/bnx2-mips-09-6.2.1b.fw",
		"bnx2/bnx2-rv2p-09-6.0.17.fw -> ../shared/rv2p-09.fw", "bnx2/bnx2-rv2p-09ax-6.0.17.fw",
		"regdb.bin -> regulatory.db", "regulatory.db", "regulatory.db.p7s",
		"shared/", "shared/rv2p-09.fw",
	}
	if got := firmwareListing(t, root); !reflect.DeepEqual(got, wantTree) {
		t.Errorf("firmware left:\n got  %q\n want %q", got, wantTree)
	}
	if _, err := os.Stat(filepath.Join(root, "lib/modules", testkernel.Release, "modules.dep")); err != nil {
		t.Errorf("the kernel's modules were touched: %v", err)
	}
}

func TestPruneHumanOutputAndRefusals(t *testing.T) {
	root := prunableImage(t)
	before := firmwareListing(t, root)
	dir := filepath.Join(root, "usr/lib/firmware")

	stdout, stderr, code := runCLI(t, append(pruneArgs, "--root", root, "--dry-run")...)
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	for _, line := range []string{
		"would remove " + dir + "/i915/adlp_dmc.bin\n",
		"would remove directory " + dir + "/i915\n",
		"--keep regulatory*: would keep 2 files\n",
		"--keep-module bnx2: would keep 6 files (5 firmware declared, 1 missing)\n",
		"--keep-module e1000e: would keep 0 files (0 firmware declared, 0 missing)\n",
		"would remove 6 files (1.5 MiB) of 15; would keep 9 files (0.0 MiB); would remove 3 empty directories in " + dir + "\n",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("dry-run output lacks %q:\n%s", line, stdout)
		}
	}

	// A pattern that matches nothing and an unknown module: every problem named, nothing removed.
	stdout, stderr, code = runCLI(t, "prune", "--root", root, "--keep", "regulatory*", "--keep", "iwlwifi-ty-a0-gf-a0*",
		"--keep-module", "bnx2", "--keep-module", "no_such_driver", "--json")
	if code != 1 || stdout != "" {
		t.Errorf("unmatched pattern and unknown module: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{
		`--keep "iwlwifi-ty-a0-gf-a0*" matches no file in ` + dir + "\n",
		`--keep-module "no_such_driver": kernel ` + testkernel.Release + " has no such module",
		"nothing was removed\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if got := firmwareListing(t, root); !reflect.DeepEqual(got, before) {
		t.Fatalf("a refused prune changed the tree:\n%q", got)
	}

	stdout, stderr, code = runCLI(t, append(pruneArgs, "--root", root)...)
	if code != 0 || !strings.HasSuffix(stdout, "removed 6 files (1.5 MiB) of 15; kept 9 files (0.0 MiB); removed 3 empty directories in "+dir+"\n") {
		t.Errorf("prune: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "removed "+dir+"/i915/adlp_dmc.bin") {
		t.Errorf("paths are listed only with --verbose:\n%s", stdout)
	}

	if _, stderr, code := runCLI(t, "prune", "--root", root); code != 2 || !strings.Contains(stderr, "nothing to keep") {
		t.Errorf("no --keep nor --keep-module: exit %d, %s", code, stderr)
	}
}
