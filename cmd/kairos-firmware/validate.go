package main

import (
	"fmt"
	"io"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hostfs"
)

// validateResult is validate's JSON output.
type validateResult struct {
	Valid  bool           `json:"valid"`
	Files  []string       `json:"files"`
	Errors []config.Error `json:"errors"`
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr)
	rootDir := fs.String("root", "/", "directory the Kairos configuration directories and /proc/cmdline resolve under (when no FILE is given)")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kairos-firmware validate [--root DIR] [--json] [FILE...]\n\nChecks the firmware: block of the named cloud-config files (merged in order), or of\nthe files Kairos reads under --root plus /proc/cmdline. Prints every error; exits 1 if any.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	root, err := hostfs.New(*rootDir)
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware validate: %v\n", err)
		return exitUsage
	}
	files := fs.Args()
	errs := config.Validate(root, files)
	if *asJSON {
		if code := writeJSON(stdout, stderr, validateResult{Valid: len(errs) == 0, Files: nonNil(files), Errors: nonNilErrors(errs)}); code != exitOK {
			return code
		}
	} else {
		for _, e := range errs {
			fmt.Fprintln(stdout, e.Error())
		}
		if len(errs) == 0 {
			fmt.Fprintln(stdout, "valid")
		} else {
			fmt.Fprintf(stdout, "%d errors\n", len(errs))
		}
	}
	if len(errs) > 0 {
		return exitFindings
	}
	return exitOK
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilErrors(s []config.Error) []config.Error {
	if s == nil {
		return []config.Error{}
	}
	return s
}
