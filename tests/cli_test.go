package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/hwmatch/fakesys"
)

// fakeRoot writes a fake system tree into a temporary directory and returns it.
func fakeRoot(t *testing.T, tree map[string]any) string {
	t.Helper()
	fsys, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return fsys.TempDir()
}

func TestDetectHumanOutputReadsLikeLspci(t *testing.T) {
	root := fakeRoot(t, fakesys.SpikeMachine())
	stdout, stderr, code := runCLI(t, "detect", "--root", root, "--kernel-release", fakesys.Release)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"1-4:1.0 usb [2357:011e] class ffffff: failed-firmware\n",
		"\tModalias: usb:v2357p011Ed0200dc00dsc00dp00icFFiscFFipFFin00\n",
		"\tKernel modules: rtw88_8821au\n",
		"\tFirmware failed to load: rtw88/rtw8821a_fw.bin\n",
		"\tProbe failed: error -22\n",
		"0000:00:02.0 pci [8086:100e] class 020000: bound\n\tModalias: pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00\n\tKernel driver in use: e1000\n",
		"\tFirmware declared (2): edu/edu.bin, edu/edu-v2.bin\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// Problems reading the tree go to stderr as warnings, never into the data on stdout.
	if !strings.Contains(stderr, "warning: ") || strings.Contains(stdout, "warning:") {
		t.Errorf("warnings belong on stderr only:\nstdout: %s\nstderr: %s", stdout, stderr)
	}
}

func TestDetectJSONShape(t *testing.T) {
	root := fakeRoot(t, fakesys.SpikeMachine())
	var raw struct {
		KernelRelease string           `json:"kernel_release"`
		Devices       []map[string]any `json:"devices"`
	}
	runJSON(t, &raw, "detect", "--root", root, "--kernel-release", fakesys.Release, "--json")
	if raw.KernelRelease != fakesys.Release || len(raw.Devices) != 9 {
		t.Fatalf("kernel_release %q, %d devices", raw.KernelRelease, len(raw.Devices))
	}
	for _, d := range raw.Devices {
		for _, field := range []string{"bus", "id", "vendor", "product", "class", "modalias", "driver", "modules", "firmware", "firmware_failed", "probe_failed", "status"} {
			if _, ok := d[field]; !ok {
				t.Errorf("device %v lacks field %q", d["id"], field)
			}
		}
	}
	var inv hwmatch.Inventory
	runJSON(t, &inv, "detect", "--root", root, "--kernel-release", fakesys.Release, "--json")
	data, _ := json.Marshal(inv.Devices[0])
	if !strings.Contains(string(data), `"firmware_failed":[]`) {
		t.Errorf("empty lists must be [] not null: %s", data)
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "usage: kairos-firmware COMMAND"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"detect", "--no-such-flag"}, 2, "flag provided but not defined: -no-such-flag"},
		{[]string{"detect", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"detect", "--root", missing}, 2, missing},
		{[]string{"detect", "--root", file}, 2, "not a directory"},
		{[]string{"help"}, 0, "detect"},
		{[]string{"detect", "--help"}, 0, "-kernel-release"},
		{[]string{"version"}, 0, "kairos-firmware "},
	} {
		stdout, stderr, code := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.want) {
			t.Errorf("kairos-firmware %v: exit %d (want %d), output lacks %q:\n%s%s", c.args, code, c.code, c.want, stdout, stderr)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "90_firmware.yaml")
	good := filepath.Join(dir, "91_firmware.yaml")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(bad, []byte("#cloud-config\nfirmware:\n  auto: maybe\n  reprobe: {mode: sometimes}\n"), 0o644))
	must(os.WriteFile(good, []byte("#cloud-config\nfirmware:\n  extensions:\n    - name: linux-firmware-realtek\n      when: [{usb: \"2357:011e\"}]\n"), 0o644))

	stdout, _, code := runCLI(t, "validate", bad)
	want := bad + ":3:9: firmware.auto: expected a boolean (true or false), got a string (value \"maybe\")\n" +
		bad + ":4:19: firmware.reprobe.mode: unknown mode; want failed, matched or off (value \"sometimes\")\n2 errors\n"
	if code != 1 || stdout != want {
		t.Errorf("validate of a bad file: exit %d\n got %q\nwant %q", code, stdout, want)
	}
	if stdout, _, code := runCLI(t, "validate", good); code != 0 || stdout != "valid\n" {
		t.Errorf("validate of a good file: exit %d, %q", code, stdout)
	}
	var res struct {
		Valid  bool             `json:"valid"`
		Errors []map[string]any `json:"errors"`
	}
	stdout, _, code = runCLI(t, "validate", "--json", good, bad)
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 1 || res.Valid || len(res.Errors) != 2 || res.Errors[0]["line"] != float64(3) {
		t.Errorf("validate --json: exit %d, %v, %s", code, err, stdout)
	}
	// Without files: the Kairos directories under --root.
	root := fakeRoot(t, map[string]any{"/oem/90_firmware.yaml": "#cloud-config\nfirmware:\n  auto: 3\n"})
	if stdout, _, code := runCLI(t, "validate", "--root", root); code != 1 || !strings.HasPrefix(stdout, "/oem/90_firmware.yaml:3:9: firmware.auto:") {
		t.Errorf("validate --root: exit %d, %q", code, stdout)
	}
}

// TestApplyDryRunAndStatusOnAFixture: apply --dry-run on a fake system prints the plan and every
// action the merge would take, writes nothing (no report, no mounts: it needs no root), and
// status then says there is no report.
func TestApplyDryRunAndStatusOnAFixture(t *testing.T) {
	tree := fakesys.SpikeMachine()
	tree["/run/cos/active_mode"] = ""
	tree["/etc/os-release"] = "ID=debian\n"
	tree["/proc/self/mountinfo"] = ""
	tree["/sys/module/firmware_class/parameters/path"] = ""
	tree["/var/lib/kairos/extensions/active/fw-realtek/usr/lib/extension-release.d/extension-release.fw-realtek"] = "ID=_any\n"
	tree["/var/lib/kairos/extensions/active/fw-realtek/usr/lib/firmware/rtw88/rtw8821a_fw.bin"] = "fw"
	root := fakeRoot(t, tree)
	stdout, stderr, code := runCLI(t, "apply", "--root", root, "--sysroot", "/", "--kernel-release", fakesys.Release, "--dry-run")
	if code != 0 {
		t.Fatalf("apply --dry-run: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"select fw-realtek (/var/lib/kairos/extensions/active/fw-realtek): device 1-4:1.0 needs rtw88/rtw8821a_fw.bin (auto: failed to load in the kernel log)",
		"reprobe 1-4:1.0 (usb) by drivers_probe, then usb-reenumerate",
		// The kernel is given real paths: the fixture root's.
		"would mount " + root + "/var/lib/kairos/extensions/active/fw-realtek on /run/kairos-firmware/images/fw-realtek type - (bind)",
		"would remount /run/kairos-firmware/images/fw-realtek (ro,nosuid,nodev,remount,bind)",
		"would write \"/run/kairos-firmware/images/fw-realtek/usr/lib/firmware\" to /sys/module/firmware_class/parameters/path",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "run/kairos-firmware")); err == nil {
		t.Error("--dry-run created /run/kairos-firmware")
	}
	stdout, stderr, code = runCLI(t, "status", "--root", root)
	if code != 1 || !strings.Contains(stderr, filepath.Join(root, "run/kairos-firmware/report.json")) {
		t.Errorf("status without a report: exit %d, %q %q", code, stdout, stderr)
	}
}
