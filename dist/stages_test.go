// Package dist holds the files that hook kairos-firmware into a Kairos boot (dracut module,
// yip stage files, systemd units). Its tests run them through the real tools that read them.
package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mudler/yip/pkg/executor"
	"github.com/mudler/yip/pkg/schema"
	vfs "github.com/twpayne/go-vfs/v5"
)

// hostConsole runs `if` conditions for real with sh, with the absolute paths they test moved
// under a fixture root, and records the commands a stage would run instead of running them
// (they would act on this machine).
type hostConsole struct {
	root     string
	commands []string
}

func (c *hostConsole) Run(cmd string, opts ...func(*exec.Cmd)) (string, error) {
	if strings.HasPrefix(cmd, "[") { // an if condition: test(1) expressions
		rooted := strings.NewReplacer("/run/", c.root+"/run/", "/usr/bin/", c.root+"/usr/bin/").Replace(cmd)
		out, err := exec.Command("sh", "-c", rooted).CombinedOutput()
		return string(out), err
	}
	c.commands = append(c.commands, cmd)
	return "", nil
}
func (c *hostConsole) Start(*exec.Cmd, ...func(*exec.Cmd)) error { return nil }
func (c *hostConsole) RunTemplate([]string, string) error        { return nil }

// TestOEMStageRunsApplyOnUKIBootsOnly loads system/oem/35_kairos-firmware.yaml with yip's own
// loader and runs its initramfs stage with yip's executor (its default plugins and
// conditionals, as immucore runs them): apply runs on a UKI boot, and not on a non-UKI boot,
// where the dracut unit does the work outside the chroot.
func TestOEMStageRunsApplyOnUKIBootsOnly(t *testing.T) {
	stageFile, err := filepath.Abs("system/oem/35_kairos-firmware.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := schema.Load(stageFile, vfs.OSFS, schema.FromFile, nil)
	if err != nil {
		t.Fatalf("yip cannot load %s: %v", stageFile, err)
	}
	// yip's cloud-config loader adds an empty step of its own; ours is the one with commands.
	var ours []string
	for _, step := range cfg.Stages["initramfs"] {
		if len(step.Commands) > 0 {
			ours = append(ours, step.Name)
		}
	}
	if want := []string{"Make extension firmware visible and re-probe devices (UKI)"}; !reflect.DeepEqual(ours, want) {
		t.Fatalf("initramfs steps with commands: %q, want %q", ours, want)
	}
	for _, c := range []struct {
		name string
		uki  bool
		want []string
	}{
		{"uki", true, []string{"/usr/bin/kairos-firmware apply --sysroot /"}},
		{"non-uki", false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			must(t, os.MkdirAll(filepath.Join(root, "run/cos"), 0o755))
			must(t, os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "usr/bin/kairos-firmware"), []byte("#!/bin/sh\n"), 0o755))
			if c.uki {
				must(t, os.WriteFile(filepath.Join(root, "run/cos/uki_boot_mode"), nil, 0o644))
			}
			console := &hostConsole{root: root}
			if err := executor.NewExecutor().Run("initramfs", vfs.OSFS, console, stageFile); err != nil {
				t.Fatalf("yip run: %v", err)
			}
			if !reflect.DeepEqual(console.commands, c.want) {
				t.Errorf("commands %q, want %q", console.commands, c.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
