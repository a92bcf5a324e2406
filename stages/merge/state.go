package merge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// stateVersion changes when state.json changes incompatibly.
const stateVersion = 1

// stateFile is the State's name in RunDir.
const stateFile = "state.json"

// journalFile, in RunDir, holds the actions of a Merge in progress (State.Journal).
const journalFile = "journal.jsonl"

// State is what Merge made, persisted as RunDir/state.json. Actions is a journal: every
// directory, file, loop device, dm-verity device, mount, attribute write and link, in the order
// made, each written down before it is made. While Merge runs, state.json names a journal file
// (Journal) to which each action is appended, one line before it is made and one after;
// Merge's end writes state.json whole and removes that file. Whatever point a crash stops
// Merge at, state.json with its journal lists everything that may exist, and Unmerge (or the
// next Merge) undoes it. (Rewriting state.json before each action, as Merge first did, cost
// about half of its own time: BenchmarkApplyHost.)
type State struct {
	Version int `json:"version"`
	// Complete says Merge finished. An incomplete State was interrupted: the next Merge undoes
	// it before starting again.
	Complete bool `json:"complete"`
	// DryRun says nothing was done: the State is what Merge would make.
	DryRun bool      `json:"dry_run"`
	Time   time.Time `json:"time"`
	// The options in force.
	Sysroot           string   `json:"sysroot"`
	RunDir            string   `json:"run_dir"`
	FirmwareClassPath string   `json:"firmware_class_path"`
	RunExtensions     string   `json:"run_extensions"`
	Hierarchies       []string `json:"hierarchies"`

	Images   []ImageState     `json:"images"`
	Firmware FirmwareState    `json:"firmware"`
	Merged   []HierarchyState `json:"merged"`
	Links    []LinkState      `json:"links"`
	Actions  []Action         `json:"actions"`
	Warnings []string         `json:"warnings"`
	// Journal is the file in RunDir holding the actions made since state.json was written,
	// "" when Actions lists them all. Load reads it into Actions.
	Journal string `json:"journal,omitempty"`
}

// ImageState is one image.
type ImageState struct {
	Name string `json:"name"`
	// Path is the image in the sysroot, as the plan gave it (a store entry).
	Path string `json:"path"`
	// File is what Path resolves to, under the root.
	File   string `json:"file"`
	Format string `json:"format"`
	// Identity is the file's size, modification time and inode: a replaced image is merged
	// anew.
	Identity string `json:"identity"`
	// Mount is where the image is mounted, RunDir/images/<name>.
	Mount string `json:"mount"`
	// Device is the device mounted for a file image: its loop device, or for a DDI partition
	// with dm-verity the verity device (/dev/dm-N) over loop devices on its data and hash
	// partitions.
	Device string `json:"device,omitempty"`
	// Verity names the image's dm-verity devices (kairos-firmware-<name>, and
	// kairos-firmware-<name>-usr for a /usr partition on a root one).
	Verity []string `json:"verity,omitempty"`
	// Error says why the image is not mounted; the other images are merged without it.
	Error string `json:"error,omitempty"`
}

// FirmwareState is the directory given to the kernel.
type FirmwareState struct {
	// Dir is the firmware directory as the kernel sees it ("" when no image has firmware): an
	// image's usr/lib/firmware, or RunDir/firmware, an overlay of several.
	Dir string `json:"dir"`
	// Layers are the images, top first.
	Layers []string `json:"layers"`
	// Previous is firmware_class.path before Merge, restored by Unmerge.
	Previous string `json:"previous"`
	Written  bool   `json:"written"`
	Error    string `json:"error,omitempty"`
}

// HierarchyState is one hierarchy of the sysroot merged the way systemd-sysext does.
type HierarchyState struct {
	Hierarchy string `json:"hierarchy"`
	// Target is the hierarchy under the root (Sysroot + Hierarchy).
	Target string `json:"target"`
	// Layers are the images, top first (below the metadata layer, above the host's).
	Layers []string `json:"layers"`
	// Data is the overlay's mount data.
	Data string `json:"data,omitempty"`
	// Refused says why the hierarchy was left alone although images populate it.
	Refused string `json:"refused,omitempty"`
	Error   string `json:"error,omitempty"`
}

// LinkState is one image's link in /run/extensions.
type LinkState struct {
	Image  string `json:"image"`
	Link   string `json:"link"`
	Target string `json:"target"`
	// Created says Merge made the link (and Unmerge removes it).
	Created bool `json:"created"`
	// Skipped says why no link was made.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Action kinds.
const (
	ActMkdir   = "mkdir"   // Path: a directory Merge created
	ActFile    = "file"    // Path: a file Merge wrote, Value its content
	ActLoop    = "loop"    // Path: the backing file (real), Source the device, Data the window
	ActVerity  = "verity"  // Path: the device-mapper name; Source the node (/dev/dm-N), Data the table
	ActMount   = "mount"   // Path: the mount point; Source, FSType, Flags, Data as given to mount(2)
	ActRemount = "remount" // Path: the mount point; Flags as given to mount(2)
	ActAttr    = "attr"    // Path: the attribute; Value written, Previous the value before
	ActLink    = "link"    // Path: the symlink; Value its target
)

// Action is one side effect. Paths are under the root except where the kind says "real";
// Source and Data are what the kernel was given (real paths).
type Action struct {
	Kind     string  `json:"kind"`
	Path     string  `json:"path"`
	Source   string  `json:"source,omitempty"`
	FSType   string  `json:"fstype,omitempty"`
	Flags    uintptr `json:"flags,omitempty"`
	Data     string  `json:"data,omitempty"`
	Value    string  `json:"value,omitempty"`
	Previous string  `json:"previous,omitempty"`
	// Image names the image the action is for.
	Image string `json:"image,omitempty"`
	// Done says the action succeeded; an action without it failed (Error) or was interrupted.
	Done  bool   `json:"done"`
	Error string `json:"error,omitempty"`
}

// String renders the action the way apply prints it.
func (a Action) String() string {
	switch a.Kind {
	case ActMount:
		return fmt.Sprintf("mount %s on %s type %s (%s) %s", a.Source, a.Path, orDash(a.FSType), flagNames(a.Flags), a.Data)
	case ActRemount:
		return fmt.Sprintf("remount %s (%s)", a.Path, flagNames(a.Flags))
	case ActLoop:
		return fmt.Sprintf("loop %s -> %s", a.Path, orDash(a.Source))
	case ActVerity:
		return fmt.Sprintf("dm-verity %s -> %s (verity %s)", a.Path, orDash(a.Source), a.Data)
	case ActAttr:
		return fmt.Sprintf("write %q to %s (was %q)", a.Value, a.Path, a.Previous)
	case ActLink:
		return fmt.Sprintf("symlink %s -> %s", a.Path, a.Value)
	case ActFile:
		return fmt.Sprintf("write %s (%d bytes)", a.Path, len(a.Value))
	}
	return fmt.Sprintf("%s %s", a.Kind, a.Path)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// flagNames spells the mount(2) flags Merge uses.
func flagNames(f uintptr) string {
	var names []string
	for _, n := range []struct {
		bit  uintptr
		name string
	}{
		{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"}, {unix.MS_REMOUNT, "remount"}, {unix.MS_BIND, "bind"},
		{unix.MS_REC, "rec"},
	} {
		if f&n.bit != 0 {
			names = append(names, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("%#x", f))
	}
	if names == nil {
		return "rw"
	}
	return strings.Join(names, ",")
}

// Problems lists what did not go as asked: images not mounted, the firmware directory not
// given to the kernel, hierarchies refused or failed, links not made.
func (s *State) Problems() []string {
	var out []string
	for _, im := range s.Images {
		if im.Error != "" {
			out = append(out, fmt.Sprintf("image %s: %s", im.Name, im.Error))
		}
	}
	if s.Firmware.Error != "" {
		out = append(out, "firmware: "+s.Firmware.Error)
	}
	for _, h := range s.Merged {
		switch {
		case h.Error != "":
			out = append(out, fmt.Sprintf("%s: %s", h.Hierarchy, h.Error))
		case h.Refused != "":
			out = append(out, fmt.Sprintf("%s: not merged: %s", h.Hierarchy, h.Refused))
		}
	}
	for _, l := range s.Links {
		if l.Error != "" {
			out = append(out, fmt.Sprintf("link %s: %s", l.Link, l.Error))
		}
	}
	return out
}

// statePath is RunDir/state.json.
func statePath(runDir string) string { return path.Join(runDir, stateFile) }

// Load reads the State in runDir ("" for DefaultRunDir) under root, for `status`. Without
// one it returns an error that matches fs.ErrNotExist.
func Load(root *hostfs.Root, runDir string) (*State, error) {
	if runDir == "" {
		runDir = DefaultRunDir
	}
	data, err := root.FS.ReadFile(statePath(runDir))
	if err != nil {
		return nil, fmt.Errorf("merge state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("merge state %s: %w", root.Real(statePath(runDir)), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("merge state %s: version %d, this program reads version %d", root.Real(statePath(runDir)), st.Version, stateVersion)
	}
	if st.Journal != "" {
		if err := st.readJournal(root, runDir); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// journalLine is one line of the journal file: action N of State.Actions, as it was before it
// was made (N new) or after (N seen before).
type journalLine struct {
	N int `json:"n"`
	Action
}

// readJournal adds the journal file's actions to s.Actions. A last line cut short is a write
// a crash interrupted: the action it was to announce was not made (each is written before it
// is made), so it is left out.
func (s *State) readJournal(root *hostfs.Root, runDir string) error {
	file := path.Join(runDir, s.Journal)
	data, err := root.FS.ReadFile(file)
	if notExist(err) {
		// A crash between state.json and the journal's first line: nothing was made yet.
		return nil
	}
	if err != nil {
		return fmt.Errorf("merge journal: %w", err)
	}
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		var l journalLine
		if err := json.Unmarshal(line, &l); err != nil {
			if i == len(lines)-1 {
				break
			}
			return fmt.Errorf("merge journal %s:%d: %w", root.Real(file), i+1, err)
		}
		switch {
		case l.N == len(s.Actions):
			s.Actions = append(s.Actions, l.Action)
		case l.N >= 0 && l.N < len(s.Actions):
			s.Actions[l.N] = l.Action
		default:
			return fmt.Errorf("merge journal %s:%d: action %d follows action %d", root.Real(file), i+1, l.N, len(s.Actions)-1)
		}
	}
	return nil
}

// previousFirmwarePath is firmware_class.path before s's merge wrote it.
func (s *State) previousFirmwarePath() string {
	for _, a := range slices.Backward(s.Actions) {
		if a.Kind == ActAttr && a.Path == s.FirmwareClassPath {
			return a.Previous
		}
	}
	return s.Firmware.Previous
}

// save writes the State atomically: a temporary file renamed over state.json, so a reader
// (or a crash) sees the old State or the new one, never half of one.
func (s *State) save(root *hostfs.Root) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	final := statePath(s.RunDir)
	tmp := final + ".tmp"
	if err := root.FS.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("merge state: %w", err)
	}
	if err := root.FS.Rename(tmp, final); err != nil {
		return fmt.Errorf("merge state: %w", err)
	}
	return nil
}

// removeState deletes state.json (and a stray temporary file, and the journal file).
func removeState(root *hostfs.Root, runDir string) error {
	_ = root.FS.Remove(statePath(runDir) + ".tmp")
	_ = root.FS.Remove(path.Join(runDir, journalFile))
	if err := root.FS.Remove(statePath(runDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("merge state: %w", err)
	}
	return nil
}
