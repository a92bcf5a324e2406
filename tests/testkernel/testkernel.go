// Package testkernel gives tests the real Debian kernel tree that `make fixtures` unpacks
// (tests/fixtures/debian-kernel.sh): modules with their metadata, and vmlinuz for QEMU boots.
package testkernel

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Release is the Debian kernel the tests use (FACTS.md: the proven test rig).
const Release = "6.1.0-56-amd64"

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Dir returns the unpacked kernel package (it holds lib/modules/<Release> and boot/). Where it
// is missing the test is skipped with the command that makes it, except under CI (CI=true),
// where a missing fixture is a failure: CI must run every test.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KAIROS_FIRMWARE_TEST_KERNEL")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), ".cache", "kernel", Release)
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		Missing(t, "Debian kernel fixture %s is missing: run `make fixtures`", dir)
	}
	return dir
}

// ModulesDir is Dir's lib/modules/<Release>.
func ModulesDir(t testing.TB) string {
	return filepath.Join(Dir(t), "lib", "modules", Release)
}

// Tool returns the path of an external program a test needs, skipping (or failing under CI)
// when it is not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s is not installed: run `make deps`", name)
	}
	return p
}

// Missing skips the test with the reason, or fails it when running under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run this test: "+format, args...)
	}
	t.Skipf(format, args...)
}
