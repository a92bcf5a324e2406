// Package tests runs the kairos-firmware binary end to end: on real recorded machines with a real
// kernel's metadata, and (in later files) inside QEMU boots.
package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// binary is the kairos-firmware built once for all tests, static as it ships.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kairos-firmware-tests")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kairos-firmware")
	build := exec.Command("go", "build", "-trimpath", "-o", binary, "./cmd/kairos-firmware")
	build.Dir = testkernel.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kairos-firmware: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs the binary and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// runJSON runs the binary expecting exit 0 and decodes its JSON output into v.
func runJSON(t *testing.T, v any, args ...string) string {
	t.Helper()
	stdout, stderr, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("kairos-firmware %v: exit %d\nstderr: %s", args, code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("kairos-firmware %v: output is not JSON: %v\n%s", args, err, stdout)
	}
	return stderr
}
