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

// afterInstallStep is the step the after-install stage must hold.
const afterInstallStep = "Install the images of firmware.install into the new system's extension store"

// TestAfterInstallStageInstallsIntoTheNewSystemsStore runs the after-install stage with yip's
// executor as kairos-agent's install runs it, then runs the command it gave for real with sh:
// blkid, mount and umount are stand-ins (a partition is a directory, mounting links it into
// place, unmounting unlinks it) and /usr/bin/kairos-firmware is the real binary. The image of
// the cloud-config's firmware.install must land in COS_PERSISTENT's
// .state/var-lib-kairos.bind, where the installed system's /var/lib/kairos/extensions will be,
// and every mount must be undone.
func TestAfterInstallStageInstallsIntoTheNewSystemsStore(t *testing.T) {
	stageFile, err := filepath.Abs("system/oem/35_kairos-firmware.yaml")
	must(t, err)
	cfg, err := schema.Load(stageFile, vfs.OSFS, schema.FromFile, nil)
	if err != nil {
		t.Fatalf("yip cannot load %s: %v", stageFile, err)
	}
	var ours []string
	for _, step := range cfg.Stages["after-install"] {
		if len(step.Commands) > 0 {
			ours = append(ours, step.Name)
		}
	}
	if want := []string{afterInstallStep}; !reflect.DeepEqual(ours, want) {
		t.Fatalf("after-install steps with commands: %q, want %q", ours, want)
	}

	// Without the binary the step does nothing.
	console := &hostConsole{root: t.TempDir()}
	if err := executor.NewExecutor().Run("after-install", vfs.OSFS, console, stageFile); err != nil {
		t.Fatalf("yip run: %v", err)
	}
	if len(console.commands) != 0 {
		t.Errorf("commands without /usr/bin/kairos-firmware: %q", console.commands)
	}

	for _, c := range []struct {
		name      string
		encrypted bool
	}{{"plain", false}, {"encrypted", true}} {
		t.Run(c.name, func(t *testing.T) {
			root, parts := t.TempDir(), t.TempDir()
			must(t, os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
			buildBinary(t, filepath.Join(root, "usr/bin/kairos-firmware"))
			persistent, oem := filepath.Join(parts, "persistent"), filepath.Join(parts, "oem")
			must(t, os.MkdirAll(persistent, 0o755))
			must(t, os.MkdirAll(oem, 0o755))
			image := filepath.Join(parts, "linux-firmware-realtek.sysext.raw")
			must(t, os.WriteFile(image, []byte("realtek firmware"), 0o644))
			must(t, os.WriteFile(filepath.Join(oem, "90_custom.yaml"), []byte("#cloud-config\nfirmware:\n  install:\n    - file:"+image+"\n"), 0o600))
			shims := fakeTools(t, persistent, oem, c.encrypted)

			console := &hostConsole{root: root}
			if err := executor.NewExecutor().Run("after-install", vfs.OSFS, console, stageFile); err != nil {
				t.Fatalf("yip run: %v", err)
			}
			if len(console.commands) != 1 {
				t.Fatalf("commands %q, want one", console.commands)
			}
			script := strings.NewReplacer("/run/", root+"/run/", "/usr/bin/", root+"/usr/bin/").Replace(console.commands[0])
			cmd := exec.Command("sh", "-c", script)
			cmd.Env = append(os.Environ(), "PATH="+shims+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the step failed: %v\n%s", err, out)
			}
			calls, _ := os.ReadFile(filepath.Join(shims, "calls"))
			store := filepath.Join(persistent, ".state/var-lib-kairos.bind/extensions")
			if c.encrypted {
				if !strings.Contains(string(out), "encrypted and locked") || len(calls) != 0 {
					t.Errorf("encrypted: output %s, mounts %s", out, calls)
				}
				return
			}
			data, err := os.ReadFile(filepath.Join(store, "linux-firmware-realtek.sysext.raw"))
			if err != nil || string(data) != "realtek firmware" {
				t.Errorf("image in the new system's store: %q, %v\n%s", data, err, out)
			}
			if target, _ := os.Readlink(filepath.Join(store, "common/linux-firmware-realtek.sysext.raw")); target != "/var/lib/kairos/extensions/linux-firmware-realtek.sysext.raw" {
				t.Errorf("enable link -> %q", target)
			}
			target := root + "/run/kairos-firmware/target"
			wantCalls := "mount " + persistent + " " + target + "/usr/local\n" +
				"mount -o ro " + oem + " " + target + "/oem\n" +
				"mount --bind " + target + "/usr/local/.state/var-lib-kairos.bind " + target + "/var/lib/kairos\n" +
				"umount " + target + "/var/lib/kairos\n" +
				"umount " + target + "/oem\n" +
				"umount " + target + "/usr/local\n"
			if string(calls) != wantCalls {
				t.Errorf("mounts:\n%s\nwant:\n%s", calls, wantCalls)
			}
		})
	}
}

// fakeTools writes blkid, mount and umount stand-ins into a directory for PATH. blkid finds
// COS_PERSISTENT and COS_OEM (the directories given) and reports the persistent one as
// crypto_LUKS when encrypted; mount replaces the mount point by a link to the source;
// umount puts the empty directory back. mount and umount log their arguments to DIR/calls.
func fakeTools(t *testing.T, persistent, oem string, encrypted bool) string {
	t.Helper()
	dir := t.TempDir()
	fsType := "ext4"
	if encrypted {
		fsType = "crypto_LUKS"
	}
	tools := map[string]string{
		"blkid": `case "$1 $2" in
"-L COS_PERSISTENT") echo ` + persistent + ` ;;
"-L COS_OEM") echo ` + oem + ` ;;
"-o value") echo ` + fsType + ` ;;
*) exit 2 ;;
esac`,
		"mount": `echo "mount $*" >> ` + dir + `/calls
eval "src=\${$(($#-1))}" "dst=\${$#}"
rmdir "$dst" && ln -s "$src" "$dst"`,
		"umount": `echo "umount $*" >> ` + dir + `/calls
rm "$1" && mkdir "$1"`,
	}
	for name, body := range tools {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	}
	return dir
}

// buildBinary builds kairos-firmware as it ships (static) at dst.
func buildBinary(t *testing.T, dst string) {
	t.Helper()
	build := exec.Command("go", "build", "-trimpath", "-o", dst, "./cmd/kairos-firmware")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kairos-firmware: %v\n%s", err, out)
	}
}
