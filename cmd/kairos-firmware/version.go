package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time by the Makefile (-X main.version=...).
var version = ""

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	v := version
	if v == "" {
		v = "(devel)"
		if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
			v = info.Main.Version
		}
	}
	if *asJSON {
		return writeJSON(stdout, stderr, map[string]string{"version": v})
	}
	fmt.Fprintf(stdout, "kairos-firmware %s\n", v)
	return exitOK
}
