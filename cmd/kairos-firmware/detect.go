package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
)

func runDetect(args []string, stdout, stderr io.Writer) int {
	var sys systemFlags
	fs := newFlagSet("detect", stderr)
	sys.register(fs)
	firmwareOnly := fs.Bool("firmware-only", false, "list only devices whose modules declare firmware or that failed to load firmware")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	root, err := hostfs.New(sys.root)
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware detect: %v\n", err)
		return exitUsage
	}
	inv, err := hwmatch.Detect(hwmatch.Options{Root: root, KernelRelease: sys.kernelRelease, KmsgPath: sys.kmsg})
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware detect: %v\n", err)
		return exitFindings
	}
	for _, w := range inv.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *firmwareOnly {
		kept := inv.Devices[:0]
		for _, d := range inv.Devices {
			if len(d.Firmware) > 0 || len(d.FirmwareFailed) > 0 {
				kept = append(kept, d)
			}
		}
		inv.Devices = kept
	}
	if sys.json {
		return writeJSON(stdout, stderr, inv)
	}
	printInventory(stdout, inv)
	return exitOK
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "kairos-firmware: writing JSON: %v\n", err)
		return exitFindings
	}
	return exitOK
}

// printInventory prints devices the way `lspci -k` does: a line per device, indented details.
func printInventory(w io.Writer, inv *hwmatch.Inventory) {
	fmt.Fprintf(w, "kernel %s: %d devices\n", inv.KernelRelease, len(inv.Devices))
	for _, d := range inv.Devices {
		fmt.Fprintf(w, "%s %s [%s:%s] class %s: %s\n", d.ID, d.Bus, orDash(d.Vendor), orDash(d.Product), orDash(d.Class), d.Status)
		if d.Modalias != "" {
			fmt.Fprintf(w, "\tModalias: %s\n", d.Modalias)
		}
		if d.Driver != "" {
			fmt.Fprintf(w, "\tKernel driver in use: %s\n", d.Driver)
		}
		if len(d.Modules) > 0 {
			fmt.Fprintf(w, "\tKernel modules: %s\n", strings.Join(d.Modules, ", "))
		}
		if len(d.Firmware) > 0 {
			fmt.Fprintf(w, "\tFirmware declared (%d): %s\n", len(d.Firmware), abbreviate(d.Firmware, 4))
		}
		// Only when not every matching module counts (docs/detect.md, "drivers").
		if !slices.Equal(d.Drivers, d.Modules) {
			drivers := strings.Join(d.Drivers, ", ")
			if drivers == "" {
				drivers = "none of them"
			}
			fmt.Fprintf(w, "\tExpected to drive it: %s (firmware needed: %d)\n", drivers, len(d.Needs))
		}
		if len(d.FirmwareFailed) > 0 {
			fmt.Fprintf(w, "\tFirmware failed to load: %s\n", strings.Join(d.FirmwareFailed, ", "))
		}
		if d.ProbeFailed {
			fmt.Fprintf(w, "\tProbe failed: error %d\n", d.ProbeError)
		}
		for _, warning := range d.Warnings {
			fmt.Fprintf(w, "\tWarning: %s\n", warning)
		}
	}
}

func abbreviate(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s, ... %d more (--json lists all)", strings.Join(list[:n], ", "), len(list)-n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
