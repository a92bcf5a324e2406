// Package prune removes firmware from an image's root tree except what early boot needs: the
// files --keep patterns name, the firmware --keep-module modules declare, and the symlinks that
// lead to them. It replaces the `find /usr/lib/firmware ! -path ... -exec rm` of Kairos'
// Dockerfiles. Plan computes the whole removal set and checks every option before Apply removes
// anything, so a mistyped pattern or module name removes nothing.
package prune

import (
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// Options say what to keep. Paths are relative to the firmware directory.
type Options struct {
	Root *hostfs.Root
	// Keep are fnmatch(3) patterns (flags 0, so '*' also matches '/', as find -path does) over
	// paths relative to the firmware directory. A matched directory keeps everything under it;
	// a compressed file is kept when its name without .zst or .xz matches.
	Keep []string
	// KeepModules are modules whose declared firmware (MODULE_FIRMWARE) is kept in every
	// variant the kernel would load.
	KeepModules []string
	// KernelRelease is the kernel whose modules KeepModules names; "" means the single release
	// installed under the root.
	KernelRelease string
}

// File is one removed file; a symlink weighs 0 bytes.
type File struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// PatternResult is how many files (and links) one --keep pattern kept.
type PatternResult struct {
	Pattern string `json:"pattern"`
	Kept    int    `json:"kept"`
}

// ModuleResult is what one --keep-module kept.
type ModuleResult struct {
	Module string `json:"module"`
	// Firmware are the names the module declares, as `modinfo -F firmware` prints them.
	Firmware []string `json:"firmware"`
	// Missing are the declared names with no variant in the tree.
	Missing []string `json:"missing"`
	// Kept counts the files and links kept for the module (variants and link targets included).
	Kept int `json:"kept"`
}

// Result is what pruning removes and keeps. Plan returns it with DryRun set; Apply makes it true
// of the tree. Paths are relative to FirmwareDir.
type Result struct {
	// FirmwareDir is the firmware directory as seen under the root (symlinks resolved).
	FirmwareDir string `json:"firmware_dir"`
	// KernelRelease is the kernel --keep-module read, "" without --keep-module.
	KernelRelease string `json:"kernel_release,omitempty"`
	Removed       []File `json:"removed"`
	// RemovedDirs are the directories left empty, deepest first.
	RemovedDirs  []string        `json:"removed_dirs"`
	Kept         []string        `json:"kept"`
	BytesRemoved int64           `json:"bytes_removed"`
	BytesKept    int64           `json:"bytes_kept"`
	Patterns     []PatternResult `json:"patterns"`
	Modules      []ModuleResult  `json:"modules"`
	Warnings     []string        `json:"warnings"`
	DryRun       bool            `json:"dry_run"`
	// NotRemoved lists, after a failed Apply, the planned removals still in place.
	NotRemoved []string `json:"not_removed,omitempty"`
}

// Problems are everything wrong with the options. Plan reports them all at once; nothing is
// removed.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

// Plan computes what pruning would remove and keep; it changes nothing.
func Plan(opts Options) (*Result, error) {
	dir, err := findFirmwareDir(opts.Root)
	if err != nil {
		return nil, err
	}
	t, err := walk(opts.Root.FS, dir)
	if err != nil {
		return nil, err
	}
	res := &Result{
		FirmwareDir: dir,
		Removed:     []File{},
		RemovedDirs: []string{},
		Kept:        []string{},
		Patterns:    []PatternResult{},
		Modules:     []ModuleResult{},
		Warnings:    []string{},
		DryRun:      true,
	}
	k := newKeeper(opts.Root, t)
	var problems Problems
	for _, pattern := range opts.Keep {
		pr, problem := k.keepPattern(pattern)
		res.Patterns = append(res.Patterns, pr)
		if problem != "" {
			problems = append(problems, problem)
		}
	}
	if len(opts.KeepModules) > 0 {
		modules, release, moduleProblems, err := k.keepModules(opts.KeepModules, opts.KernelRelease)
		if err != nil {
			problems = append(problems, err.Error())
		}
		res.Modules, res.KernelRelease = modules, release
		problems = append(problems, moduleProblems...)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	k.keepLinksToSurvivors()
	res.Warnings = append(res.Warnings, k.warnings...)
	res.Warnings = append(res.Warnings, k.linkWarnings()...)
	fillSets(res, t, k)
	return res, nil
}

// fillSets splits the tree into what stays and what goes.
func fillSets(res *Result, t *tree, k *keeper) {
	survivors := k.survivingDirs()
	for _, rel := range t.sorted() {
		e := t.entries[rel]
		switch {
		case e.kind == directory:
			if !survivors[rel] {
				res.RemovedDirs = append(res.RemovedDirs, rel)
			}
		case k.kept[rel]:
			res.Kept = append(res.Kept, rel)
			res.BytesKept += e.size
		default:
			res.Removed = append(res.Removed, File{Path: rel, Bytes: e.size})
			res.BytesRemoved += e.size
		}
	}
	// Children sort after their parents; reversed, every directory comes after its contents.
	sort.Sort(sort.Reverse(sort.StringSlice(res.RemovedDirs)))
}
