package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/stages/plan"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runPlan(args []string, stdout, stderr io.Writer) int {
	var sys systemFlags
	var configs stringList
	fs := newFlagSet("plan", stderr)
	sys.register(fs)
	fs.Var(&configs, "config", "extra cloud-config `FILE` (repeatable; highest precedence, read from the real file system)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	root, err := hostfs.New(sys.root)
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware plan: %v\n", err)
		return exitUsage
	}
	in, err := plan.Gather(plan.Options{Root: root, KernelRelease: sys.kernelRelease, KmsgPath: sys.kmsg, ConfigFiles: configs})
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware plan: %v\n", err)
		return exitFindings
	}
	p := plan.DecideVerified(in)
	for _, w := range p.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if sys.json {
		return writeJSON(stdout, stderr, p)
	}
	printPlan(stdout, p)
	return exitOK
}

// printPlan explains each decision in one line.
func printPlan(w io.Writer, p *plan.Plan) {
	fmt.Fprintf(w, "kernel %s, boot state %s, %d devices; stores: %s\n", p.KernelRelease, p.BootState, len(p.Devices), strings.Join(p.Stores, ", "))
	for _, e := range p.ConfigErrors {
		fmt.Fprintf(w, "config error (built-in defaults apply): %s\n", e.Error())
	}
	for _, s := range p.Selected {
		for _, r := range s.Reasons {
			fmt.Fprintf(w, "select %s (%s): %s\n", s.Name, s.Path, describeReason(r))
		}
	}
	for _, r := range p.Rejected {
		fmt.Fprintf(w, "reject %s (%s): %s\n", r.Name, r.Path, r.Reason)
	}
	for _, r := range p.Reprobe {
		method := r.Method
		if len(r.Fallbacks) > 0 {
			method += ", then " + strings.Join(r.Fallbacks, ", then ")
		}
		fmt.Fprintf(w, "reprobe %s (%s) by %s: %s\n", r.Device, r.Bus, method, r.Why)
	}
	for _, u := range p.Unresolved {
		fmt.Fprintf(w, "unresolved: %s\n", u)
	}
	if len(p.Selected) == 0 && len(p.Reprobe) == 0 {
		fmt.Fprintln(w, "nothing to do: no device needs firmware that an image provides")
	}
}

func describeReason(r plan.Reason) string {
	who := "the machine"
	if r.Device != "" {
		who = "device " + r.Device
	}
	if len(r.Firmware) == 0 {
		return fmt.Sprintf("%s matches %s", who, r.Rule)
	}
	return fmt.Sprintf("%s needs %s (%s)", who, strings.Join(r.Firmware, ", "), r.Rule)
}
