// Package imagetest builds real erofs and squashfs images for tests with the system's
// mkfs.erofs (erofs-utils) and mksquashfs (squashfs-tools); tests skip when a tool is missing
// (and fail under CI, which must run them: see testkernel.Missing).
package imagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// Tool returns the path of a program or skips the test naming the Debian package.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testkernel.Missing(t, "%s not found (make deps, or apt-get install -y %s): %v", name, pkg, err)
	}
	return p
}

// ErofsCompressors lists what this mkfs.erofs can compress with ("lz4", "lz4hc", "lzma",
// "deflate", "zstd", ...), from the "Available compressors are:" line of its help.
func ErofsCompressors(t testing.TB) []string {
	tool := Tool(t, "mkfs.erofs", "erofs-utils")
	out, _ := exec.Command(tool, "--help").CombinedOutput()
	m := regexp.MustCompile(`(?m)^Available compressors are: (.*)$`).FindSubmatch(out)
	if m == nil {
		return nil
	}
	var algs []string
	for _, a := range strings.FieldsFunc(string(m[1]), func(r rune) bool { return r == ',' || r == ' ' }) {
		algs = append(algs, strings.TrimSuffix(a, ","))
	}
	return algs
}

// SquashfsCompressors lists the compressors this mksquashfs supports, from its help text.
func SquashfsCompressors(t testing.TB) []string {
	tool := Tool(t, "mksquashfs", "squashfs-tools")
	out, _ := exec.Command(tool, "-help").CombinedOutput()
	var algs []string
	in := false
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "Compressors available") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(l, "\t") { // the indented list ends the section
			break
		}
		if f := strings.Fields(l); len(f) > 0 {
			algs = append(algs, f[0])
		}
	}
	return algs
}

// Erofs builds an erofs image of src at dst with mkfs.erofs and extra options.
func Erofs(t testing.TB, dst, src string, opts ...string) {
	t.Helper()
	tool := Tool(t, "mkfs.erofs", "erofs-utils")
	args := append([]string{"--quiet", "-T0", "--all-root"}, opts...)
	args = append(args, dst, src)
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs %v: %v\n%s", args, err, out)
	}
}

// Squashfs builds a squashfs image of src at dst compressed with comp.
func Squashfs(t testing.TB, dst, src, comp string) {
	t.Helper()
	tool := Tool(t, "mksquashfs", "squashfs-tools")
	args := []string{src, dst, "-noappend", "-quiet", "-no-progress", "-all-root", "-comp", comp}
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
	}
}

// WriteTree creates files (path → content; a content starting with "->" makes a symlink to
// the rest) under root.
func WriteTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(c, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
