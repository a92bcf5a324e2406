package merge

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/strverscmp"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// merger carries one Merge.
type merger struct {
	root   *hostfs.Root // the running system
	target *hostfs.Root // the sysroot, inside root
	ops    sysops.Ops
	o      Options
	st     *State
	j      *journal
	recs   []*imageRec // sorted by name, oldest version first
	table  []mountEntry
	// previousFirmwarePath is firmware_class.path before the merge this one replaces.
	previousFirmwarePath string
}

// imageRec is one image being merged.
type imageRec struct {
	st      *ImageState
	content *content
	mounted bool
	// rootHashes are the image's verified dm-verity root hashes (manifests.Image.RootHashes).
	rootHashes map[int][]byte
}

// Merge makes the images' firmware visible to the kernel and merges the images into the
// sysroot's hierarchies, as docs/merge.md describes:
//
//  1. each image is mounted read-only on RunDir/images/<name>; a DDI partition with a dm-verity
//     hash partition through a dm-verity device with the root hash the plan verified;
//  2. their usr/lib/firmware directories become one directory (an overlay on RunDir/firmware
//     when there are several) and firmware_class.path points at it;
//  3. each hierarchy of Options.Hierarchies the images populate is merged into the sysroot the
//     way systemd-sysext merges it, so that systemd-sysext after the pivot replaces it;
//  4. the images are linked into /run/extensions the way immucore links them.
//
// An image that cannot be read or mounted is reported in its ImageState and the others go on;
// refusals and failures of the later steps are reported in the State too (State.Problems).
// The error is for what stops Merge as a whole: bad options, a journal that cannot be written,
// an earlier merge that cannot be undone.
//
// Merge is idempotent: when state.json shows a complete merge of the same images with the
// same options, and its mounts, attribute and links are all still in place, it returns that
// State and changes nothing. Otherwise it undoes what state.json lists (an earlier merge, or
// one a crash interrupted) and merges again.
func Merge(root *hostfs.Root, ops sysops.Ops, images []*manifests.Image, opts Options) (*State, error) {
	o, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	m := &merger{root: root, target: sysrootOf(root, o.Sysroot), ops: ops, o: o}
	m.st = &State{
		Version: stateVersion, DryRun: o.DryRun, Time: ops.Now().UTC(),
		Sysroot: o.Sysroot, RunDir: o.RunDir, FirmwareClassPath: o.FirmwareClassPath,
		RunExtensions: o.RunExtensions, Hierarchies: o.Hierarchies,
		Images: []ImageState{}, Merged: []HierarchyState{}, Links: []LinkState{},
		Actions: []Action{}, Warnings: []string{},
	}
	m.j = &journal{root: root, ops: ops, st: m.st, dry: o.DryRun, made: map[string]bool{}}
	m.describe(images)

	if !o.DryRun {
		old, err := Load(root, o.RunDir)
		switch {
		case err == nil:
			if old.Complete && sameRequest(old, m.st) && m.intact(old) {
				return old, nil
			}
			m.previousFirmwarePath = old.previousFirmwarePath()
			// What cannot be undone (a mount of someone else's stacked on one of ours) stays
			// in the new journal, for the next Unmerge to try again; the new merge goes on
			// around it.
			kept, err := undo(root, ops, old, o)
			if err != nil {
				m.st.Warnings = append(m.st.Warnings, err.Error())
				m.st.Actions = append(m.st.Actions, kept...)
			}
		case !notExist(err):
			return nil, fmt.Errorf("merge: %w (remove it once nothing it lists is mounted)", err)
		}
		if err := vfs.MkdirAll(root.FS, o.RunDir, 0o755); err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
	}
	if o.DryRun {
		m.j.made[o.RunDir] = true // made outside the journal, as below
	}
	m.readContents()
	if m.table, err = readMountInfo(o.MountInfo); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	m.checkNamespace()
	if err := m.run(); err != nil {
		return m.st, err
	}
	return m.st, nil
}

// run makes the merge, step by step; it stops only when the journal cannot be saved.
func (m *merger) run() error {
	if !m.j.dry {
		// The journal file exists, empty, before state.json names it: what a State names is
		// never a leftover of an earlier merge.
		if err := m.j.open(); err != nil {
			return err
		}
		defer m.j.close()
		m.st.Journal = journalFile
		if err := m.st.save(m.root); err != nil {
			return err
		}
	}
	for _, r := range m.recs {
		if r.st.Error != "" {
			continue
		}
		if err := m.mountImage(r); err != nil {
			r.st.Error = err.Error()
			if m.j.err != nil {
				return m.j.err
			}
			continue
		}
		r.mounted = true
	}
	m.firmware(m.layersOf(firmwareHierarchy))
	if m.j.err != nil {
		return m.j.err
	}
	var names []string
	for _, r := range m.recs {
		if r.mounted {
			names = append(names, r.st.Name)
		}
	}
	for _, h := range m.o.Hierarchies {
		layers := m.layersOf(h)
		if len(layers) == 0 {
			continue // no image has files there: systemd-sysext leaves it alone too
		}
		m.st.Merged = append(m.st.Merged, m.mergeHierarchy(h, layers, names))
		if m.j.err != nil {
			return m.j.err
		}
	}
	for _, r := range m.recs {
		if r.st.File == "" {
			continue // nothing to link to
		}
		m.st.Links = append(m.st.Links, m.link(r.st))
		if m.j.err != nil {
			return m.j.err
		}
	}
	if m.j.dry {
		return nil
	}
	m.st.Complete, m.st.Journal = true, ""
	if err := m.st.save(m.root); err != nil {
		m.st.Journal = journalFile // still the journal of record
		return err
	}
	// state.json lists every action now.
	m.j.close()
	_ = m.root.FS.Remove(path.Join(m.o.RunDir, journalFile))
	return nil
}

// layersOf returns the mounted images that populate h, newest version first: the order of an
// overlay's lowerdir list, whose first entry is the top layer.
func (m *merger) layersOf(h string) []*imageRec {
	var out []*imageRec
	for i := len(m.recs) - 1; i >= 0; i-- {
		if r := m.recs[i]; r.mounted && r.content.layers[h] {
			out = append(out, r)
		}
	}
	return out
}

// sysrootOf is the sysroot as a Root of its own.
func sysrootOf(root *hostfs.Root, sysroot string) *hostfs.Root {
	if sysroot == "/" {
		return root
	}
	return &hostfs.Root{Dir: root.Real(sysroot), FS: vfs.NewPathFS(root.FS, sysroot)}
}

// describe fills the State's images: where each file is and which it is. An image that
// cannot be used gets its error and stays in the list.
func (m *merger) describe(images []*manifests.Image) {
	sorted := slices.Clone(images)
	sort.SliceStable(sorted, func(a, b int) bool {
		if c := strverscmp.Compare(sorted[a].Name, sorted[b].Name); c != 0 {
			return c < 0
		}
		return sorted[a].Name < sorted[b].Name
	})
	m.st.Images = make([]ImageState, len(sorted))
	seen := map[string]bool{}
	for i, img := range sorted {
		im := &m.st.Images[i]
		*im = ImageState{Name: img.Name, Path: img.Path, Format: string(img.Format)}
		r := &imageRec{st: im, rootHashes: img.RootHashes}
		m.recs = append(m.recs, r)
		if err := checkName(img.Name); err != nil {
			im.Error = err.Error()
			continue
		}
		if seen[img.Name] {
			im.Error = "another image has the same name"
			continue
		}
		seen[img.Name] = true
		im.Mount = imageMount(m.o.RunDir, img.Name)
		resolved, err := m.target.Resolve(img.Path)
		if err != nil {
			im.Error = err.Error()
			continue
		}
		im.File = path.Join(m.o.Sysroot, resolved)
		real := m.root.Real(im.File)
		fi, err := os.Stat(real)
		if err != nil {
			im.Error = err.Error()
			continue
		}
		im.Identity = identity(fi)
		if im.Format == "" {
			f, err := manifests.Detect(real)
			if err != nil {
				im.Error = err.Error()
				continue
			}
			im.Format = string(f)
		}
	}
}

// readContents reads what each usable image holds (after the no-op check: for a squashfs
// image this is the expensive part), one image per core at a time.
func (m *merger) readContents() {
	work := make(chan *imageRec)
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(m.recs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				c, err := readContent(r.st.Name, m.root.Real(r.st.File), m.o.Hierarchies, r.rootHashes, m.target)
				if err != nil {
					r.st.Error = err.Error()
					continue
				}
				r.content = c
			}
		}()
	}
	for _, r := range m.recs {
		if r.st.Error == "" {
			work <- r
		}
	}
	close(work)
	wg.Wait()
	for _, r := range m.recs {
		if r.content != nil {
			m.st.Warnings = append(m.st.Warnings, prefixAll(r.st.Name+": ", r.content.notes)...)
		}
	}
}

// checkName refuses names that cannot be a directory name under RunDir/images (the manifests
// package has checked systemd's rules already).
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("image name %q cannot name a directory", name)
	}
	return nil
}

// identity tells a replaced image file from the one merged.
func identity(fi os.FileInfo) string {
	ino := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("size=%d mtime=%d ino=%d", fi.Size(), fi.ModTime().UnixNano(), ino)
}

func prefixAll(p string, l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = p + s
	}
	return out
}

// sameRequest says two States were asked for the same merge.
func sameRequest(a, b *State) bool {
	if a.Sysroot != b.Sysroot || a.RunDir != b.RunDir || a.FirmwareClassPath != b.FirmwareClassPath ||
		a.RunExtensions != b.RunExtensions || !slices.Equal(a.Hierarchies, b.Hierarchies) || len(a.Images) != len(b.Images) {
		return false
	}
	for i := range a.Images {
		x, y := a.Images[i], b.Images[i]
		if x.Name != y.Name || x.Path != y.Path || x.File != y.File || x.Format != y.Format || x.Identity != y.Identity {
			return false
		}
	}
	return true
}

// intact says everything old made is still in place, and nothing in it failed: then Merge
// has nothing to do.
func (m *merger) intact(old *State) bool {
	table, err := readMountInfo(m.o.MountInfo)
	if err != nil {
		return false
	}
	for _, a := range old.Actions {
		if !a.Done || a.Error != "" {
			return false
		}
		switch a.Kind {
		case ActMount:
			if top, ok := topMount(table, m.root.Real(a.Path)); !ok || !ownMount(a, top) {
				return false
			}
		case ActAttr:
			if v, err := m.root.FS.ReadFile(a.Path); err != nil || strings.TrimSuffix(string(v), "\n") != a.Value {
				return false
			}
		case ActLink:
			if t, err := os.Readlink(m.root.Real(a.Path)); err != nil || t != a.Value {
				return false
			}
		}
	}
	for _, im := range old.Images {
		if im.Error != "" {
			return false
		}
	}
	// A merged hierarchy still carries the marker of the overlay mounted there now (its
	// mount was checked above; the marker is read from the meta layer it shows).
	for _, h := range old.Merged {
		if h.Error != "" {
			return false
		}
		if h.Refused != "" {
			continue
		}
		data, err := m.root.FS.ReadFile(path.Join(metaDir(old.RunDir, h.Hierarchy), markerDir, "dev"))
		dev, derr := m.devOf(h.Target)
		if err != nil || derr != nil || strings.TrimSpace(string(data)) != dev {
			return false
		}
	}
	return old.Firmware.Error == ""
}

// checkNamespace warns when Merge does not run in init's mount namespace, where the kernel
// looks for firmware (kernel_read_file_from_path_initns(), fs/kernel_read_file.c): mounts made
// elsewhere are invisible to it.
func (m *merger) checkNamespace() {
	self, err1 := m.root.FS.Readlink("/proc/self/ns/mnt")
	init, err2 := m.root.FS.Readlink("/proc/1/ns/mnt")
	if err1 == nil && err2 == nil && self != init {
		m.st.Warnings = append(m.st.Warnings, fmt.Sprintf("not in init's mount namespace (%s, init's is %s): the kernel will not see these mounts", self, init))
	}
}
