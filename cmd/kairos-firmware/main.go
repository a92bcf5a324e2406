// Command kairos-firmware makes firmware from system extension images reach the kernel of an
// immutable Kairos system when the hardware needs it. This file is the thin CLI: flags, output,
// exit codes. The work lives in the packages it calls.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK       = 0 // the command did its job
	exitFindings = 1 // the command ran and found a problem it reports (invalid config, --strict failure)
	exitUsage    = 2 // bad command line or unusable --root: nothing was done
)

// command is one subcommand. run returns an exit code.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"apply":    {"make the selected images' firmware visible, re-probe failed devices, write the report", runApply},
	"status":   {"the last apply's report and the live state: mounts, firmware path, bound devices", runStatus},
	"unmerge":  {"undo apply's merge: unmount the images, restore firmware_class.path, remove our links", runUnmerge},
	"install":  {"install a system extension image into the Kairos store and enable it (file, http(s), OCI registry)", runInstall},
	"detect":   {"inventory PCI/USB devices, their modules, declared firmware and kernel-log failures", runDetect},
	"plan":     {"decide which firmware extension images this machine needs and which devices to re-probe, and why", runPlan},
	"prune":    {"remove firmware from an image's root tree except the files and modules' firmware to keep", runPrune},
	"split":    {"cut a firmware tree into one extension image per driver, with manifests and a catalog", runSplit},
	"validate": {"check the firmware: block of the cloud-config (every error with file, line and column)", runValidate},
	"version":  {"print the version", runVersion},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kairos-firmware: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kairos-firmware COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'kairos-firmware COMMAND --help' for a command's flags. Docs: docs/cli.md")
}

// systemFlags are the flags every command that looks at a system shares.
type systemFlags struct {
	root          string
	kernelRelease string
	kmsg          string
	json          bool
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kairos-firmware "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func (s *systemFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.root, "root", "/", "directory every system path (/sys, /proc, /lib/modules, /dev/kmsg, ...) resolves under")
	fs.StringVar(&s.kernelRelease, "kernel-release", "", "kernel release whose modules to read (default: ROOT/proc/sys/kernel/osrelease, else the running kernel's)")
	fs.StringVar(&s.kmsg, "kmsg", "", "kernel log to read: /dev/kmsg or a text file of kernel log lines (default: ROOT/dev/kmsg)")
	fs.BoolVar(&s.json, "json", false, "print JSON")
}

// reportProblems prints every problem of err (a list type such as prune.Problems or
// split.Problems, else err itself) prefixed with the command, then what was left untouched.
func reportProblems[P ~[]string](stderr io.Writer, command string, err error, untouched string) int {
	var problems P
	if !errors.As(err, &problems) {
		problems = P{err.Error()}
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "kairos-firmware %s: %s\n", command, p)
	}
	fmt.Fprintf(stderr, "kairos-firmware %s: %s\n", command, untouched)
	return exitFindings
}

// usageExit is the exit code for a flag parsing error: --help is not an error.
func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// parseFlags parses args; it returns exitOK to go on, or the exit code to stop with.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		return usageExit(err), false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), strings.Join(fs.Args(), " "))
		return exitUsage, false
	}
	return exitOK, true
}
