package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDemoStory is `make demo`: scenario 1 told for a person. It runs only when
// KAIROS_FIRMWARE_DEMO names a file to write the story to (tests/demo/demo.sh prints it).
func TestDemoStory(t *testing.T) {
	out := os.Getenv("KAIROS_FIRMWARE_DEMO")
	if out == "" {
		t.Skip("the demo runs through make demo (KAIROS_FIRMWARE_DEMO is not set)")
	}
	r := bootApply(t, kairosRoot(t, nil, nil), "kfw.pivot kfw.apply=detect,dry-run")
	if r.ExitCode != 0 {
		t.Fatalf("scenario exit %d\n%s", r.ExitCode, r.Console)
	}
	var b strings.Builder
	section := func(title string) { fmt.Fprintf(&b, "\n== %s\n", title) }
	indent := func(text string) {
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			if strings.TrimSpace(line) != "" {
				fmt.Fprintf(&b, "   %s\n", line)
			}
		}
	}
	section("1. The spike's failure, reproduced: Debian's 6.1 kernel in QEMU, a Realtek 2357:011e USB adapter and a PCI device whose drivers request firmware that the initramfs does not have")
	indent(strings.Join(r.Values["failed.kmsg"], "\n"))
	fmt.Fprintf(&b, "   drivers: %s -> %s, %s -> %s\n", r.Value("edu"), r.Value("failed.edu-driver"), r.Value("intf"), r.Value("failed.usb-intf-driver"))
	section("2. What the machine needs: kairos-firmware detect --firmware-only (in the initrd)")
	indent(r.Blocks["detect"])
	section("3. The plan: kairos-firmware apply --dry-run (the real root is at /sysroot, its store holds fw-kfwtest.sysext.raw, no rule configured)")
	indent(r.Blocks["dry-run"])
	section("4. kairos-firmware apply (what the dracut unit runs before switch_root)")
	indent(r.Blocks["apply-stderr"])
	section("5. The devices, bound before switch_root")
	indent(strings.Join(r.Values["applied.kmsg"], "\n"))
	fmt.Fprintf(&b, "   drivers: %s -> %s, %s -> %s\n", r.Value("edu"), r.Value("applied.edu-driver"), r.Value("intf"), r.Value("applied.usb-intf-driver"))
	section("6. After switch_root: systemd-sysext's hierarchy, firmware_class.path and the report carried over")
	for _, f := range r.Values["post.usr-lib-firmware"] {
		fmt.Fprintf(&b, "   /usr/lib/firmware/%s bytes\n", f)
	}
	fmt.Fprintf(&b, "   firmware_class.path = %s\n", r.Value("post.fwpath"))
	fmt.Fprintf(&b, "   re-probed after the pivot: %s -> %s (%s)\n", r.Value("edu"), r.Value("post.edu-driver"), strings.Join(r.Values["post.kmsg"], "; "))
	if r.Value("applied.edu-driver") != "kfwtest_edu" || r.Value("applied.usb-intf-driver") != "kfwtest_rtw" {
		t.Errorf("the demo did not fix the failure:\n%s", b.String())
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
