// Package split cuts a firmware tree (an unpacked linux-firmware, a build stage's
// /usr/lib/firmware) into systemd-sysext extension images, one per kernel module that declares
// firmware, so that a machine loads only what its hardware needs: files several modules
// declare go into a shared image named after the set (or to a --group), files no module
// declares into a catch-all image. Each image carries its extension-release file and the
// embedded manifest `plan` reads; a catalog lists them all. The same input gives byte-identical
// images. docs/split.md describes the rules.
package split

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/manifests/gpt"
)

// Options say what to split and how to write it.
type Options struct {
	// FirmwareDir is the firmware tree, a directory on the real file system.
	FirmwareDir string
	// KernelFS holds the kernel's modules at /lib/modules/<KernelRelease> or
	// /usr/lib/modules/<KernelRelease> (hostfs.New(root).FS, or ModulesDir).
	KernelFS      vfs.FS
	KernelRelease string
	// Out is the output directory: missing or empty.
	Out     string
	Format  Format
	Groups  []Group
	Release Release
	// CatchAll names the image of the files no module declares (DefaultCatchAll if "").
	CatchAll string
	// SignKey and SignCert sign DDIs' verity root hash (both or neither; ddi only).
	SignKey, SignCert string
	// Jobs is how many images are built at once (the number of CPUs if 0).
	Jobs int
	// Progress, if set, is told how many images are written, from one goroutine at a time.
	Progress func(done, total int)
}

// Problems are everything wrong with the options or the input; nothing was written.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

var (
	osReleaseID = regexp.MustCompile(`^(_any|[a-z0-9._-]+)$`)
	versionID   = regexp.MustCompile(`^[A-Za-z0-9._~+-]*$`)
)

// check reports every problem with the options at once.
func (o *Options) check() Problems {
	var p Problems
	switch {
	case o.FirmwareDir == "":
		p = append(p, "--firmware DIR is required")
	default:
		if info, err := os.Stat(o.FirmwareDir); err != nil {
			p = append(p, fmt.Sprintf("--firmware %q: %v", o.FirmwareDir, err))
		} else if !info.IsDir() {
			p = append(p, fmt.Sprintf("--firmware %q: not a directory", o.FirmwareDir))
		}
	}
	if o.Out == "" {
		p = append(p, "--out DIR is required")
	} else if inside(o.Out, o.FirmwareDir) {
		p = append(p, fmt.Sprintf("--out %q is inside --firmware %q", o.Out, o.FirmwareDir))
	} else if list, err := os.ReadDir(o.Out); err == nil && len(list) > 0 {
		p = append(p, fmt.Sprintf("--out %q is not empty (it holds %s): split writes into a new or empty directory", o.Out, list[0].Name()))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		p = append(p, fmt.Sprintf("--out %q: %v", o.Out, err))
	}
	if !slices.Contains(Formats, o.Format) {
		p = append(p, fmt.Sprintf("--format %q: want directory, erofs, squashfs or ddi", o.Format))
	}
	need := func(what string, tools [][2]string) {
		for _, tool := range tools {
			if _, err := lookPath(tool[0]); err != nil {
				p = append(p, fmt.Sprintf("%s needs %s (Debian package %s) on PATH", what, tool[0], tool[1]))
			}
		}
	}
	need("--format "+string(o.Format), o.Format.tools())
	if o.SignKey != "" {
		need("--sign-key", signTools)
	}
	r := o.Release
	if !osReleaseID.MatchString(r.ID) {
		p = append(p, fmt.Sprintf("--id %q: want _any or an os-release ID (lower-case letters, digits, '.', '_', '-')", r.ID))
	}
	if !versionID.MatchString(r.VersionID) {
		p = append(p, fmt.Sprintf("--version %q: want letters, digits, '.', '_', '~', '+', '-'", r.VersionID))
	}
	if _, ok := gpt.TypeGUID(gpt.Root, r.Architecture); !ok {
		switch {
		case r.Architecture == "_any" && o.Format == FormatDDI:
			p = append(p, "--arch _any: a DDI's root partition type names one architecture")
		case r.Architecture != "_any":
			p = append(p, fmt.Sprintf("--arch %q: want one of systemd's architectures (x86-64, arm64, ...) or _any", r.Architecture))
		}
	}
	if (o.SignKey == "") != (o.SignCert == "") {
		p = append(p, "--sign-key and --sign-cert go together")
	} else if o.SignKey != "" && o.Format != FormatDDI {
		p = append(p, "--sign-key and --sign-cert sign DDIs only: add --format ddi")
	}
	return p
}

// inside reports whether p is dir or lies under it.
func inside(p, dir string) bool {
	ap, err1 := filepath.Abs(p)
	ad, err2 := filepath.Abs(dir)
	return err1 == nil && err2 == nil && dir != "" && (ap == ad || strings.HasPrefix(ap, ad+string(filepath.Separator)))
}

// splitter carries one run.
type splitter struct {
	opts     Options
	tree     *tree
	assigned *assignment
}

// Split writes the images and the catalog into opts.Out and returns the catalog. Problems with
// the options or the input come back as Problems, before anything is written; when an image
// fails, everything written so far is removed.
func Split(opts Options) (*Catalog, error) {
	if opts.CatchAll == "" {
		opts.CatchAll = DefaultCatchAll
	}
	if p := opts.check(); len(p) > 0 {
		return nil, p
	}
	t, warnings, err := readTree(opts.FirmwareDir)
	if err != nil {
		return nil, err
	}
	modules, modWarnings, err := kernelModules(opts)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, modWarnings...)
	a, err := assign(t, modules, opts.Groups, opts.CatchAll)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, a.warnings...)
	if opts.Release.ID != "_any" && opts.Release.VersionID == "" {
		warnings = append(warnings, fmt.Sprintf("--id %s without --version: systemd-sysext refuses the images on hosts whose os-release has a VERSION_ID", opts.Release.ID))
	}
	s := &splitter{opts: opts, tree: t, assigned: a}
	c := &Catalog{
		Version:       CatalogVersion,
		KernelRelease: opts.KernelRelease,
		Format:        opts.Format,
		Release:       opts.Release.fields(),
		Notes:         append([]string{}, a.notes...),
		Warnings:      append([]string{}, warnings...),
	}
	if c.Images, err = s.writeAll(); err != nil {
		return nil, err
	}
	if err := c.write(opts.Out); err != nil {
		return nil, err
	}
	return c, nil
}

// writeAll builds every image, Jobs at a time, and lists them by name. On a failure it removes
// what it wrote (and --out, if it made it).
func (s *splitter) writeAll() (_ []CatalogImage, err error) {
	created := false
	if _, statErr := os.Stat(s.opts.Out); errors.Is(statErr, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(s.opts.Out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(s.opts.Out, ".split-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	images := s.assigned.sortedImages()
	defer func() {
		if err == nil {
			return
		}
		if created {
			os.RemoveAll(s.opts.Out)
			return
		}
		for _, img := range images {
			os.RemoveAll(filepath.Join(s.opts.Out, s.opts.Format.fileName(img.name)))
		}
	}()

	jobs := s.opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	out := make([]CatalogImage, len(images))
	errs := make([]error, len(images))
	next := make(chan int)
	var mu sync.Mutex
	var failed atomic.Bool
	done := 0
	var wg sync.WaitGroup
	for range min(jobs, len(images)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if failed.Load() {
					continue // one failure fails the run: build no more
				}
				if out[i], errs[i] = s.write(images[i], filepath.Join(work, fmt.Sprint(i))); errs[i] != nil {
					failed.Store(true)
				}
				mu.Lock()
				done++
				if s.opts.Progress != nil {
					s.opts.Progress(done, len(images))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range images {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// write stages and builds one image.
func (s *splitter) write(img *image, work string) (CatalogImage, error) {
	file := s.opts.Format.fileName(img.name)
	dst := filepath.Join(s.opts.Out, file)
	src := dst
	if s.opts.Format != FormatDirectory {
		src = filepath.Join(work, "tree")
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return CatalogImage{}, err
	}
	st, err := s.stage(img, src)
	if err != nil {
		return CatalogImage{}, fmt.Errorf("image %s: %w", img.name, err)
	}
	ci := CatalogImage{
		Name: img.name, File: file, Format: s.opts.Format, Kind: img.kind,
		ContentSHA256: fmt.Sprintf("%x", st.digest), Modules: sortedKeys(img.modules),
		Firmware: st.firmware, FirmwareBytes: st.firmwareBytes, Size: st.bytes,
	}
	if s.opts.Format == FormatDirectory {
		return ci, nil
	}
	if err := s.build(src, dst, work, st.digest); err != nil {
		return CatalogImage{}, fmt.Errorf("image %s: %w", img.name, err)
	}
	if ci.SHA256, ci.Size, err = fileDigest(dst); err != nil {
		return CatalogImage{}, fmt.Errorf("image %s: %w", img.name, err)
	}
	return ci, os.RemoveAll(work)
}
