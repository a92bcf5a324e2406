package apply

import (
	"bytes"
	"strings"
	"testing"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch/fakesys"
	"github.com/kairos-io/kairos-firmware/stages/report"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// panickingOps is a kernel interface with a bug: its first mount panics.
type panickingOps struct{ sysops.Recorder }

func (p *panickingOps) Mount(source, target, fstype string, flags uintptr, data string) error {
	panic("mount exploded")
}

// TestRunSurvivesABugOfOurs: a panic inside apply ends in the report, and Run returns normally,
// so the boot step it runs in never crashes.
func TestRunSurvivesABugOfOurs(t *testing.T) {
	tree := fakesys.SpikeMachine()
	tree["/run/cos/active_mode"] = ""
	tree["/etc/os-release"] = "ID=debian\n"
	tree["/var/lib/kairos/extensions/active/fw.raw/usr/lib/extension-release.d/extension-release.fw"] = "ID=_any\n"
	tree["/var/lib/kairos/extensions/active/fw.raw/usr/lib/firmware/rtw88/rtw8821a_fw.bin"] = "fw"
	tree["/proc/self/mountinfo"] = ""
	tree["/sys/module/firmware_class/parameters/path"] = ""
	fsys, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	root := hostfs.FromFS(fsys.TempDir(), fsys)
	var console bytes.Buffer
	res := Run(Options{Root: root, Sysroot: "/", KernelRelease: fakesys.Release, Ops: &panickingOps{}, Console: &console})
	if len(res.Report.Errors) == 0 || !strings.Contains(strings.Join(res.Report.Errors, "\n"), "mount exploded") {
		t.Fatalf("the panic is not in the report: %+v\nconsole: %s", res.Report.Errors, console.String())
	}
	if _, err := report.Load(root, report.DefaultPath); err != nil {
		t.Errorf("the report was not written after the panic: %v", err)
	}
	if !res.Failed() {
		t.Error("a panic must count as a failure for --strict")
	}
}
