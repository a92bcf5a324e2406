package prune

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// Progress is told how many of the planned removals are done.
type Progress func(done, total int)

// Apply removes what Plan listed in r: the files and links first, then the directories left
// empty, deepest first. It stops at the first failure: r then lists in Removed and RemovedDirs
// what was removed and in NotRemoved what was not, and the error says both counts.
func Apply(root *hostfs.Root, r *Result, progress Progress) error {
	total := len(r.Removed) + len(r.RemovedDirs)
	done := 0
	remove := func(rel string) error {
		err := root.FS.Remove(path.Join(r.FirmwareDir, rel))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil // gone already: that is what was asked
		}
		if err == nil {
			done++
			if progress != nil {
				progress(done, total)
			}
		}
		return err
	}
	for i, f := range r.Removed {
		if err := remove(f.Path); err != nil {
			return r.stopped(root, i, 0, err)
		}
	}
	for i, dir := range r.RemovedDirs {
		if err := remove(dir); err != nil {
			return r.stopped(root, len(r.Removed), i, err)
		}
	}
	r.DryRun = false
	return nil
}

// stopped records a failed Apply after the first files of r.Removed and the first dirs of
// r.RemovedDirs were removed.
func (r *Result) stopped(root *hostfs.Root, files, dirs int, err error) error {
	r.DryRun = false
	r.NotRemoved = []string{}
	for _, f := range r.Removed[files:] {
		r.NotRemoved = append(r.NotRemoved, f.Path)
	}
	r.NotRemoved = append(r.NotRemoved, r.RemovedDirs[dirs:]...)
	filesLeft, dirsLeft := len(r.Removed)-files, len(r.RemovedDirs)-dirs
	r.Removed, r.RemovedDirs = r.Removed[:files], r.RemovedDirs[:dirs]
	r.BytesRemoved = 0
	for _, f := range r.Removed {
		r.BytesRemoved += f.Bytes
	}
	return fmt.Errorf("removing %s: %w; stopped after removing %d files and %d directories: %d files and %d directories not removed",
		root.Real(path.Join(r.FirmwareDir, r.NotRemoved[0])), unwrapPath(err), files, dirs, filesLeft, dirsLeft)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
