package merge

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// crash stops Merge where it stands, as a killed process would: nothing after it runs.
type crash struct{ at string }

// crashFS panics with crash at the at-th change of the filesystem (mkdir, write, rename).
type crashFS struct {
	vfs.FS
	n, at int
}

func (c *crashFS) step(what string) {
	c.n++
	if c.n == c.at {
		panic(crash{what})
	}
}

func (c *crashFS) Mkdir(name string, perm fs.FileMode) error {
	c.step("mkdir " + name)
	return c.FS.Mkdir(name, perm)
}

func (c *crashFS) WriteFile(name string, data []byte, perm fs.FileMode) error {
	c.step("write " + name)
	return c.FS.WriteFile(name, data, perm)
}

func (c *crashFS) Rename(oldpath, newpath string) error {
	c.step("rename " + newpath)
	return c.FS.Rename(oldpath, newpath)
}

// crashOps panics with crash at the at-th call, before or after it takes effect.
type crashOps struct {
	sysops.Ops
	n, at int
	after bool
}

func (c *crashOps) step(what string, do func() error) error {
	c.n++
	if c.n != c.at {
		return do()
	}
	if c.after {
		do()
		panic(crash{what + " (after)"})
	}
	panic(crash{what})
}

func (c *crashOps) Mount(source, target, fstype string, flags uintptr, data string) error {
	return c.step("mount "+target, func() error { return c.Ops.Mount(source, target, fstype, flags, data) })
}

func (c *crashOps) LoopAttach(file string, offset, size int64) (dev string, hold io.Closer, err error) {
	err = c.step("loop "+file, func() error {
		var e error
		dev, hold, e = c.Ops.LoopAttach(file, offset, size)
		return e
	})
	return dev, hold, err
}

func (c *crashOps) VerityCreate(name string, t sysops.VerityTarget) (dev string, err error) {
	err = c.step("verity "+name, func() error {
		var e error
		dev, e = c.Ops.VerityCreate(name, t)
		return e
	})
	return dev, err
}

func (c *crashOps) VerityRemove(name string) error {
	return c.step("verity-remove "+name, func() error { return c.Ops.VerityRemove(name) })
}

func (c *crashOps) WriteAttr(path, value string) error {
	return c.step("write "+path, func() error { return c.Ops.WriteAttr(path, value) })
}

// crashed runs fn and reports the crash it stopped at ("" when it ran to the end).
func crashed(t *testing.T, fn func() error) (at string) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(crash)
			if !ok {
				panic(r)
			}
			at = c.at
		}
	}()
	if err := fn(); err != nil {
		t.Fatal(err)
	}
	return ""
}

// TestCrashAnywhere stops Merge at every change it makes, to the filesystem and to the
// kernel (before and after each kernel call), and checks that what is left is repaired: by
// Unmerge, back to the tree and mounts of before; by Merge, to the same mounts as a merge that
// was never interrupted.
func TestCrashAnywhere(t *testing.T) {
	// An uninterrupted merge: its mounts, and how many changes of each kind it makes.
	ref := newFixture(t)
	counter := &crashFS{FS: ref.root.FS, at: -1}
	ops := &crashOps{Ops: ref.k, at: -1}
	if _, err := Merge(hostfs.FromFS(ref.dir, counter), ops, threeImages(ref), ref.opts); err != nil {
		t.Fatal(err)
	}
	want := normalizeLoops(ref.k.table(ref.dir))
	if counter.n < 20 || ops.n < 10 {
		t.Fatalf("only %d filesystem changes and %d kernel calls", counter.n, ops.n)
	}
	for _, kind := range []string{"fs", "ops", "ops-after"} {
		n := counter.n
		if kind != "fs" {
			n = ops.n
		}
		for at := 1; at <= n; at++ {
			for _, repair := range []string{"unmerge", "merge"} {
				t.Run(fmt.Sprintf("%s-%d-%s", kind, at, repair), func(t *testing.T) {
					t.Parallel()
					f := newFixture(t)
					images := threeImages(f)
					before := f.tree()
					root := f.root
					var ops sysops.Ops = f.k
					if kind == "fs" {
						root = hostfs.FromFS(f.dir, &crashFS{FS: f.root.FS, at: at})
					} else {
						ops = &crashOps{Ops: f.k, at: at, after: kind == "ops-after"}
					}
					where := crashed(t, func() error { _, err := Merge(root, ops, images, f.opts); return err })
					if where == "" {
						t.Fatalf("no crash at change %d", at)
					}
					if repair == "merge" {
						st, err := Merge(f.root, f.k, images, f.opts)
						if err != nil {
							t.Fatal(err)
						}
						if !st.Complete || len(st.Problems()) > 0 {
							t.Errorf("after a crash at %s: complete %v, problems %q", where, st.Complete, st.Problems())
						}
						if got := normalizeLoops(f.k.table(f.dir)); !reflect.DeepEqual(got, want) {
							t.Errorf("after a crash at %s, mounts:\n%s\nwant:\n%s", where, strings.Join(got, "\n"), strings.Join(want, "\n"))
						}
					}
					unmergeClean(t, f, before)
				})
			}
		}
	}
}

// TestCrashMidJournalLine: a crash while the journal line announcing an action is written
// leaves that line cut short; the action was not made (it is announced first), so Load drops
// the line and Unmerge and Merge repair the rest. A cut line before the last is an error
// naming the file and line.
func TestCrashMidJournalLine(t *testing.T) {
	for at := 1; at <= 10; at++ {
		t.Run(fmt.Sprint("ops-", at), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			images := threeImages(f)
			before := f.tree()
			if where := crashed(t, func() error {
				_, err := Merge(f.root, &crashOps{Ops: f.k, at: at}, images, f.opts)
				return err
			}); where == "" {
				t.Fatalf("no crash at kernel call %d", at)
			}
			journal := path.Join(DefaultRunDir, journalFile)
			data, err := f.root.FS.ReadFile(journal)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, `"done":false`) {
				t.Fatalf("the last journal line does not announce the interrupted call: %s", last)
			}
			// What a killed write(2) may leave: the start of the line.
			cut := strings.Join(lines[:len(lines)-1], "") + last[:len(last)/2]
			if err := f.root.FS.WriteFile(journal, []byte(cut), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Load(f.root, "")
			if err != nil || len(st.Actions) == 0 || st.Complete {
				t.Fatalf("Load: %v (%d actions)", err, len(st.Actions))
			}
			if at == 1 {
				// One more cut line before the end is damage, not a crash.
				if err := f.root.FS.WriteFile(journal, []byte(last[:len(last)/2]+"\n"+cut), 0o600); err != nil {
					t.Fatal(err)
				}
				if _, err := Load(f.root, ""); err == nil || !strings.Contains(err.Error(), f.root.Real(journal)+":1: ") {
					t.Fatalf("Load of a journal with a cut first line: %v", err)
				}
				if err := f.root.FS.WriteFile(journal, []byte(cut), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Merge(f.root, f.k, images, f.opts); err != nil {
				t.Fatal(err)
			}
			if _, err := f.root.FS.Stat(journal); !notExist(err) {
				t.Errorf("journal file left after a complete merge: %v", err)
			}
			unmergeClean(t, f, before)
		})
	}
}
