package merge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// journal makes side effects, each recorded in the State and appended to the journal file
// before it is made (write-ahead) and again after, so that state.json and the journal file
// always list everything that may exist. With dry set it only records.
type journal struct {
	root *hostfs.Root
	ops  sysops.Ops
	st   *State
	dry  bool
	// made holds the directories a dry run would have created, so that later steps see them.
	made map[string]bool
	// err is the first failure to save the journal: nothing more may be done after it.
	err error
	// file is the journal file, open for appending while Merge runs.
	file *os.File
}

// open creates (or empties) the journal file; state.json names it only after this.
func (j *journal) open() error {
	f, err := j.root.FS.OpenFile(path.Join(j.st.RunDir, journalFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("merge journal: %w", err)
	}
	j.file = f
	return nil
}

// close closes the journal file.
func (j *journal) close() {
	if j.file != nil {
		j.file.Close()
		j.file = nil
	}
}

// append writes action i as one line, in one write(2) on a file opened O_APPEND: a reader
// sees whole lines, and a crash leaves at most the last one cut short.
func (j *journal) append(i int) error {
	line, err := json.Marshal(journalLine{N: i, Action: j.st.Actions[i]})
	if err == nil {
		_, err = j.file.Write(append(line, '\n'))
	}
	if err != nil {
		return fmt.Errorf("merge journal: %w", err)
	}
	return nil
}

// act records a, saves the State, and runs do. The returned error is do's (or the save's).
// A dry run records a and does nothing (a stays not Done).
func (j *journal) act(a Action, do func(a *Action) error) error {
	j.st.Actions = append(j.st.Actions, a)
	i := len(j.st.Actions) - 1
	if j.dry {
		return nil
	}
	if j.err != nil {
		j.st.Actions = j.st.Actions[:i]
		return j.err
	}
	if err := j.append(i); err != nil {
		j.st.Actions = j.st.Actions[:i]
		j.err = err
		return err
	}
	err := do(&j.st.Actions[i])
	if err != nil {
		j.st.Actions[i].Error = err.Error()
	} else {
		j.st.Actions[i].Done = true
	}
	// The outcome, and what the kernel named (a loop device, a dm node), for a crash later.
	if aerr := j.append(i); aerr != nil {
		j.err = aerr
		if err == nil {
			err = aerr
		}
	}
	return err
}

// exists reports whether p (under the root) exists. A dry run counts what it made, and
// nothing else under RunDir: a real Merge that has anything to do undoes the merge there
// first.
func (j *journal) exists(p string) bool {
	if j.made[p] {
		return true
	}
	if j.dry && strings.HasPrefix(p, j.st.RunDir+"/") {
		return false
	}
	_, err := j.root.FS.Lstat(p)
	return err == nil
}

// mkdirAll creates p and its missing parents, one journaled mkdir each.
func (j *journal) mkdirAll(p string, image string) error {
	p = path.Clean(p)
	if p == "/" || j.exists(p) {
		return nil
	}
	if err := j.mkdirAll(path.Dir(p), image); err != nil {
		return err
	}
	err := j.act(Action{Kind: ActMkdir, Path: p, Image: image}, func(*Action) error {
		return j.root.FS.Mkdir(p, 0o755)
	})
	if err == nil && j.dry {
		j.made[p] = true
	}
	return err
}

// writeFile writes a small file Merge owns (sysext metadata).
func (j *journal) writeFile(p, content string) error {
	return j.act(Action{Kind: ActFile, Path: p, Value: content}, func(*Action) error {
		return j.root.FS.WriteFile(p, []byte(content), 0o644)
	})
}

// mount mounts source on the mount point mp (under the root).
func (j *journal) mount(image, source, mp, fstype string, flags uintptr, data string) error {
	a := Action{Kind: ActMount, Image: image, Path: mp, Source: source, FSType: fstype, Flags: flags, Data: data}
	return j.act(a, func(*Action) error {
		return j.ops.Mount(source, j.root.Real(mp), fstype, flags, data)
	})
}

// remount changes the per-mount flags of the mount on mp.
func (j *journal) remount(image, mp string, flags uintptr) error {
	return j.act(Action{Kind: ActRemount, Image: image, Path: mp, Flags: flags}, func(*Action) error {
		return j.ops.Mount("", j.root.Real(mp), "", flags, "")
	})
}

// attr writes an attribute, remembering its previous value.
func (j *journal) attr(p, value, previous string) error {
	return j.act(Action{Kind: ActAttr, Path: p, Value: value, Previous: previous}, func(*Action) error {
		return j.ops.WriteAttr(j.root.Real(p), value)
	})
}

// symlink makes link (under the root) point at target, verbatim. go-vfs' PathFS would
// rewrite an absolute target into its directory; the link must hold the path as seen after
// the pivot, so it is made on the real path with os.Symlink.
func (j *journal) symlink(image, link, target string) error {
	return j.act(Action{Kind: ActLink, Image: image, Path: link, Value: target}, func(*Action) error {
		return os.Symlink(target, j.root.Real(link))
	})
}

// notExist reports errors meaning "already gone".
func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// dryLoop stands for the loop device a dry run does not attach, dryVerity for the dm-verity
// device it does not make.
const (
	dryLoop   = "(loop device)"
	dryVerity = "(verity device)"
)

// loop attaches size bytes of file from offset (size 0: to the end) read-only to a loop
// device; the action records the device.
func (j *journal) loop(image, file string, offset, size int64) (string, io.Closer, error) {
	if j.dry {
		j.st.Actions = append(j.st.Actions, Action{Kind: ActLoop, Image: image, Path: file, Source: dryLoop, Data: window(offset, size)})
		return dryLoop, io.NopCloser(nil), nil
	}
	var dev string
	var hold io.Closer
	err := j.act(Action{Kind: ActLoop, Image: image, Path: file, Data: window(offset, size)}, func(a *Action) error {
		d, h, err := j.ops.LoopAttach(file, offset, size)
		if err != nil {
			return err
		}
		dev, hold, a.Source = d, h, d
		return nil
	})
	return dev, hold, err
}

// verity sets up the dm-verity device name over t; the action, journaled before the device
// exists, names it, so that whatever happens next an Unmerge removes it.
func (j *journal) verity(image, name string, t sysops.VerityTarget) (string, error) {
	table, err := t.Table()
	if err != nil {
		return "", err
	}
	if j.dry {
		j.st.Actions = append(j.st.Actions, Action{Kind: ActVerity, Image: image, Path: name, Source: dryVerity, Data: table})
		return dryVerity, nil
	}
	var dev string
	err = j.act(Action{Kind: ActVerity, Image: image, Path: name, Data: table}, func(a *Action) error {
		d, err := j.ops.VerityCreate(name, t)
		if err != nil {
			return err
		}
		dev, a.Source = d, d
		return nil
	})
	return dev, err
}
