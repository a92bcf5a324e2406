package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/builder/prune"
	"github.com/kairos-io/kairos-firmware/builder/split"
	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests/sysextcheck"
)

func runSplit(args []string, stdout, stderr io.Writer) int {
	var groupFlags stringList
	var opts split.Options
	fs := newFlagSet("split", stderr)
	fs.StringVar(&opts.FirmwareDir, "firmware", "", "the firmware tree to split (`DIR`, e.g. a build stage's /usr/lib/firmware)")
	modules := fs.String("modules", "", "the kernel's modules directory (`DIR`, e.g. /lib/modules/6.1.0-56-amd64); or --root and --kernel-release")
	rootDir := fs.String("root", "", "a root tree whose lib/modules/R or usr/lib/modules/R holds the kernel (with --kernel-release)")
	release := fs.String("kernel-release", "", "the kernel release under --root")
	fs.StringVar(&opts.Out, "out", "", "where to write the images and catalog.json (`DIR`, new or empty)")
	format := fs.String("format", string(split.FormatErofs), "image format: directory, erofs, squashfs or ddi")
	fs.Var(&groupFlags, "group", "one image `NAME=MODULE,MODULE...` for these modules' firmware and what they share (repeatable)")
	fs.StringVar(&opts.CatchAll, "catch-all", split.DefaultCatchAll, "the image of the files no module declares")
	fs.StringVar(&opts.Release.ID, "id", "_any", "extension-release ID: _any, or the os-release ID the images are for")
	fs.StringVar(&opts.Release.Architecture, "arch", sysextcheck.HostArch(), "extension-release ARCHITECTURE (systemd's name; _any for directory, erofs, squashfs)")
	fs.StringVar(&opts.Release.VersionID, "version", "", "extension-release VERSION_ID (what the host's os-release must say with --id)")
	fs.StringVar(&opts.SignKey, "sign-key", "", "private key (PEM) that signs each DDI's verity root hash")
	fs.StringVar(&opts.SignCert, "sign-cert", "", "certificate (PEM) of --sign-key")
	fs.IntVar(&opts.Jobs, "jobs", 0, "images built at once (default: the number of CPUs)")
	jsonOut := fs.Bool("json", false, "print the catalog as JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	opts.Format = split.Format(*format)
	usage := func(msg string, a ...any) int {
		fmt.Fprintf(stderr, "kairos-firmware split: "+msg+"\n", a...)
		return exitUsage
	}
	switch {
	case opts.FirmwareDir == "":
		return usage("--firmware DIR is required")
	case opts.Out == "":
		return usage("--out DIR is required")
	case !slices.Contains(split.Formats, opts.Format):
		return usage("--format %q: want directory, erofs, squashfs or ddi", *format)
	}
	switch {
	case *modules != "" && *rootDir != "":
		return usage("--modules and --root both name the kernel: give one")
	case *modules != "":
		kfs, r, cleanup, err := split.ModulesDir(*modules)
		if err != nil {
			return usage("%v", err)
		}
		defer cleanup()
		opts.KernelFS, opts.KernelRelease = kfs, r
	case *rootDir != "" && *release != "":
		root, err := hostfs.New(*rootDir)
		if err != nil {
			return usage("%v", err)
		}
		opts.KernelFS, opts.KernelRelease = root.FS, *release
	case *rootDir != "":
		return usage("--root needs --kernel-release")
	default:
		return usage("the kernel is missing: give --modules DIR, or --root ROOT and --kernel-release R")
	}
	for _, g := range groupFlags {
		group, err := split.ParseGroup(g)
		if err != nil {
			return usage("%v", err)
		}
		opts.Groups = append(opts.Groups, group)
	}
	opts.Progress = splitProgress(stderr)

	c, err := split.Split(opts)
	if err != nil {
		return reportProblems[split.Problems](stderr, "split", err, "nothing was written")
	}
	for _, w := range c.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *jsonOut {
		return writeJSON(stdout, stderr, c)
	}
	printSplit(stdout, opts.Out, c)
	return exitOK
}

// printSplit prints one line per image and the totals.
func printSplit(w io.Writer, out string, c *split.Catalog) {
	var count int
	var bytes, firmware int64
	for _, img := range c.Images {
		fmt.Fprintf(w, "%s: %s, %s\n", img.File, files(img.Firmware), size(img.Size))
		count += img.Firmware
		bytes += img.Size
		firmware += img.FirmwareBytes
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "%d images (%s): %s, %s of images for %s of firmware, in %s\n",
		len(c.Images), c.Format, files(count), size(bytes), size(firmware), out)
}

// size renders a byte count for people: bytes, KiB or MiB.
func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// splitProgress reports written images on stderr: an updated line on a terminal (ten times a
// second at most), else a plain line every two seconds.
func splitProgress(stderr io.Writer) func(done, total int) {
	f, ok := stderr.(*os.File)
	if ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		ok = err == nil
	}
	if !ok {
		return prune.Throttle(progressInterval, time.Now, func(done, total int) {
			fmt.Fprintf(stderr, "kairos-firmware split: wrote %d of %d images\n", done, total)
		})
	}
	last := time.Time{}
	return func(done, total int) {
		if now := time.Now(); done == total || now.Sub(last) >= 100*time.Millisecond {
			last = now
			fmt.Fprintf(stderr, "\rkairos-firmware split: wrote %d of %d images", done, total)
			if done == total {
				fmt.Fprintln(stderr)
			}
		}
	}
}
