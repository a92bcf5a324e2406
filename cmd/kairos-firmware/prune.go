package main

import (
	"fmt"
	"io"
	"path"
	"time"

	"github.com/kairos-io/kairos-firmware/builder/prune"
	"github.com/kairos-io/kairos-firmware/hostfs"
)

// progressInterval is how long a removal runs before it reports progress on stderr.
const progressInterval = 2 * time.Second

func runPrune(args []string, stdout, stderr io.Writer) int {
	var keep, keepModules stringList
	fs := newFlagSet("prune", stderr)
	rootDir := fs.String("root", "/", "root tree whose firmware directory (DIR/lib/firmware or DIR/usr/lib/firmware) is pruned")
	fs.Var(&keep, "keep", "keep firmware matching `PATTERN`, relative to the firmware directory (repeatable; a directory keeps all under it)")
	fs.Var(&keepModules, "keep-module", "keep every firmware `MODULE` declares, in every variant (repeatable)")
	release := fs.String("kernel-release", "", "kernel whose modules --keep-module reads (default: the single one under ROOT/lib/modules or ROOT/usr/lib/modules)")
	dryRun := fs.Bool("dry-run", false, "print what would be removed; change nothing")
	jsonOut := fs.Bool("json", false, "print JSON")
	verbose := fs.Bool("verbose", false, "print one line per removed path")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if len(keep) == 0 && len(keepModules) == 0 {
		fmt.Fprintln(stderr, "kairos-firmware prune: nothing to keep: give --keep PATTERN or --keep-module MODULE (to remove all firmware, remove the directory)")
		return exitUsage
	}
	root, err := hostfs.New(*rootDir)
	if err != nil {
		fmt.Fprintf(stderr, "kairos-firmware prune: %v\n", err)
		return exitUsage
	}
	res, err := prune.Plan(prune.Options{Root: root, Keep: keep, KeepModules: keepModules, KernelRelease: *release})
	if err != nil {
		return reportProblems[prune.Problems](stderr, "prune", err, "nothing was removed")
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	code := exitOK
	if !*dryRun {
		progress := prune.Throttle(progressInterval, time.Now, func(done, total int) {
			fmt.Fprintf(stderr, "kairos-firmware prune: removed %d of %d paths\n", done, total)
		})
		if err := prune.Apply(root, res, progress); err != nil {
			fmt.Fprintf(stderr, "kairos-firmware prune: %v\n", err)
			code = exitFindings
		}
	}
	if *jsonOut {
		if c := writeJSON(stdout, stderr, res); c != exitOK {
			return c
		}
		return code
	}
	printPrune(stdout, root, res, *verbose)
	return code
}

// printPrune prints the removed paths (always on a dry run, with --verbose otherwise), what each
// rule kept and the summary line.
func printPrune(w io.Writer, root *hostfs.Root, res *prune.Result, verbose bool) {
	removed, kept := "removed", "kept"
	if res.DryRun {
		removed, kept = "would remove", "would keep"
	}
	full := func(rel string) string { return root.Real(path.Join(res.FirmwareDir, rel)) }
	if verbose || res.DryRun {
		for _, f := range res.Removed {
			fmt.Fprintf(w, "%s %s\n", removed, full(f.Path))
		}
		for _, d := range res.RemovedDirs {
			fmt.Fprintf(w, "%s directory %s\n", removed, full(d))
		}
	}
	for _, p := range res.Patterns {
		fmt.Fprintf(w, "--keep %s: %s %s\n", p.Pattern, kept, files(p.Kept))
	}
	for _, m := range res.Modules {
		fmt.Fprintf(w, "--keep-module %s: %s %s (%d firmware declared, %d missing)\n", m.Module, kept, files(m.Kept), len(m.Firmware), len(m.Missing))
	}
	total := len(res.Removed) + len(res.Kept) + len(res.NotRemoved)
	fmt.Fprintf(w, "%s %d files (%s) of %d; %s %d files (%s); %s %d empty directories in %s\n",
		removed, len(res.Removed), mib(res.BytesRemoved), total, kept, len(res.Kept), mib(res.BytesKept),
		removed, len(res.RemovedDirs), root.Real(res.FirmwareDir))
	if len(res.NotRemoved) > 0 {
		fmt.Fprintf(w, "not removed (the removal stopped): %d paths\n", len(res.NotRemoved))
	}
}

func files(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

func mib(bytes int64) string {
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}
