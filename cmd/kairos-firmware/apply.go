package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/stages/apply"
	"github.com/kairos-io/kairos-firmware/stages/merge"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

func runApply(args []string, stdout, stderr io.Writer) int {
	var sys systemFlags
	var configs stringList
	fs := newFlagSet("apply", stderr)
	sys.register(fs)
	fs.Var(&configs, "config", "extra cloud-config `FILE` (repeatable; highest precedence)")
	sysroot := fs.String("sysroot", "", "target root under --root (default: /sysroot in an initrd, where /etc/initrd-release exists, else /)")
	dryRun := fs.Bool("dry-run", false, "print the plan and the merge it would make; change nothing")
	strict := fs.Bool("strict", false, "exit 1 when anything failed or a device stayed unbound (default: always exit 0, so a boot never stops)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	root, err := hostfs.New(sys.root)
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware apply: %v\n", err)
		return exitUsage
	}
	console := stderr // log lines; the data (--json, the dry-run plan) goes to stdout
	res := apply.Run(apply.Options{
		Root: root, Sysroot: *sysroot, KernelRelease: sys.kernelRelease, KmsgPath: sys.kmsg,
		ConfigFiles: configs, DryRun: *dryRun, Ops: sysops.Linux{}, Console: console,
	})
	switch {
	case sys.json:
		if code := writeJSON(stdout, stderr, res.Report); code != exitOK {
			return code
		}
	case *dryRun && res.Plan != nil:
		printPlan(stdout, res.Plan)
		if res.Merge != nil {
			for _, a := range res.Merge.Actions {
				fmt.Fprintf(stdout, "would %s\n", a.String())
			}
		}
	}
	if *strict && res.Failed() {
		return exitFindings
	}
	return exitOK
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	var sys systemFlags
	fs := newFlagSet("status", stderr)
	sys.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	root, err := hostfs.New(sys.root)
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware status: %v\n", err)
		return exitUsage
	}
	st, err := apply.Status(root, "")
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware status: %v\n", err)
		return exitFindings
	}
	if sys.json {
		return writeJSON(stdout, stderr, st)
	}
	printStatus(stdout, st)
	return exitOK
}

func printStatus(w io.Writer, st *apply.StatusReport) {
	r := st.Report
	fmt.Fprintf(w, "last %s: %s, sysroot %s, boot state %s, %d ms\n", r.Command, r.Finished.Format("2006-01-02 15:04:05Z"), r.Sysroot, r.BootState, r.Timings.TotalMS)
	if r.Mechanism != "" {
		fmt.Fprintf(w, "firmware: %s (now: %q)\n", r.Mechanism, st.FirmwareClassPath)
	}
	for _, img := range st.Images {
		live := ""
		if img.Mount != "" {
			live = " (not mounted now)"
			if img.Mounted {
				live = " (mounted)"
			}
		}
		fmt.Fprintf(w, "image %s: %s%s%s\n", img.Name, img.Outcome, suffix(img.Reason), live)
	}
	for _, d := range st.Devices {
		now := "unbound now"
		if d.DriverNow != "" {
			now = "bound to " + d.DriverNow + " now"
		}
		method := ""
		if d.Method != "" {
			method = fmt.Sprintf(" by %s, %d attempt(s)", d.Method, d.Attempts)
		}
		fmt.Fprintf(w, "device %s (%s): %s%s%s; %s\n", d.Device.Device, d.Bus, d.Outcome, method, suffix(d.Reason), now)
	}
	fmt.Fprintf(w, "firmware files made visible: %d\n", len(r.Firmware))
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

func suffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + strings.TrimSpace(reason)
}

func runUnmerge(args []string, stdout, stderr io.Writer) int {
	var sys systemFlags
	fs := newFlagSet("unmerge", stderr)
	sys.register(fs)
	sysroot := fs.String("sysroot", "", "target root under --root whose hierarchies apply merged (default: /sysroot in an initrd, else /)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	root, err := hostfs.New(sys.root)
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware unmerge: %v\n", err)
		return exitUsage
	}
	if *sysroot == "" {
		*sysroot = apply.SysrootFor(root)
	}
	if err := merge.Unmerge(root, sysops.Linux{}, merge.Options{Sysroot: *sysroot}); err != nil {
		fmt.Fprintf(stderr, "kairos-firmware unmerge: %v\n", err)
		return exitFindings
	}
	if sys.json {
		return writeJSON(stdout, stderr, map[string]bool{"unmerged": true})
	}
	fmt.Fprintln(stdout, "unmerged")
	return exitOK
}
