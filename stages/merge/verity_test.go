package merge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
	"github.com/kairos-io/kairos-firmware/manifests/verity"
	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// DDIs with dm-verity, with the fake kernel: the partitions go through loop devices, the
// dm-verity device over them is made with the root hash Admit verified, and the dm device, not
// a loop device, is mounted. The real kernel does it in tests/qemu_verity_test.go (this host
// has no device-mapper).

// buildVerityDDI returns a DDI as systemd-repart makes it (built once per test binary): a root
// partition (erofs of files) with Verity=data and its root-verity partition; with usrFiles, a
// root partition without verity and a usr partition with its usr-verity partition instead. No
// signature partition: the root hash is the one the partition UUIDs spell.
func buildVerityDDI(t testing.TB, files, usrFiles map[string]string) string {
	t.Helper()
	var keys []string
	for k, v := range files {
		keys = append(keys, k+"="+v)
	}
	for k, v := range usrFiles {
		keys = append(keys, "usr:"+k+"="+v)
	}
	sort.Strings(keys)
	key := fmt.Sprintf("ddi-verity %x", sha256.Sum256([]byte(strings.Join(keys, "\x00"))))
	imageCache.Lock()
	defer imageCache.Unlock()
	if p, ok := imageCache.built[key]; ok {
		return p
	}
	dir, err := os.MkdirTemp(imageCache.dir, "ddi-")
	if err != nil {
		t.Fatal(err)
	}
	erofs := func(name string, files map[string]string) string {
		src := filepath.Join(dir, name)
		imagetest.WriteTree(t, src, files)
		imagetest.Erofs(t, src+".erofs", src)
		return src + ".erofs"
	}
	parts := []gpttest.Part{
		{Type: "root", CopyBlocks: erofs("root", files), Verity: "data", VerityMatchKey: "r"},
		{Type: "root-verity", Verity: "hash", VerityMatchKey: "r"},
	}
	if usrFiles != nil {
		// systemd allows one verity partition per image
		parts = []gpttest.Part{
			{Type: "root", CopyBlocks: erofs("root", files)},
			{Type: "usr", CopyBlocks: erofs("usr", usrFiles), Verity: "data", VerityMatchKey: "u"},
			{Type: "usr-verity", Verity: "hash", VerityMatchKey: "u"},
		}
	}
	dst := filepath.Join(dir, "image.raw")
	gpttest.Repart(t, dst, parts)
	imageCache.built[key] = dst
	return dst
}

// verityImage puts a DDI with verity at p in the sysroot and reads it as the plan does; with
// admit, manifests.Admit judges it (signatures: auto on a GRUB boot), which records the root
// hashes it verified.
func (f *fixture) verityImage(p string, files, usrFiles map[string]string, admit bool) *manifests.Image {
	f.t.Helper()
	dst := f.dir + "/sysroot" + p
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		f.t.Fatal(err)
	}
	data, err := os.ReadFile(buildVerityDDI(f.t, files, usrFiles))
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	sys, err := hostfs.New(f.dir + "/sysroot")
	if err != nil {
		f.t.Fatal(err)
	}
	img, err := manifests.ReadEntry(sys, p)
	if err != nil {
		f.t.Fatal(err)
	}
	if admit {
		if err := manifests.Admit(sys, img, verity.PolicyAuto, false, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	return img
}

// ddiVerity is what the test knows of one data partition of a DDI file, read without
// package merge: where it and its hash partition are, and the table dm-verity must get.
type ddiVerity struct {
	data, hash *gpt.Partition
	rootHash   string
	params     *verity.Params
}

// mustTable reads the GPT of file; the file stays open until the test ends.
func mustTable(t *testing.T, file string) *gpt.Table {
	t.Helper()
	fd, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Close() })
	fi, err := fd.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, err := gpt.Read(fd, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func readDDIVerity(t *testing.T, file string) (root, usr ddiVerity) {
	t.Helper()
	table := mustTable(t, file)
	parts, err := table.Sysext(gpt.HostArch())
	if err != nil {
		t.Fatal(err)
	}
	one := func(data, hash *gpt.Partition) ddiVerity {
		if data == nil || hash == nil {
			return ddiVerity{}
		}
		p, err := verity.ReadSuperblock(table.Section(hash))
		if err != nil {
			t.Fatal(err)
		}
		// systemd-repart formats the whole data partition, and names the partitions after the
		// halves of the root hash.
		if int64(p.DataBlocks)*int64(p.DataBlockSize) != data.Size {
			t.Fatalf("the tree covers %d blocks of %d bytes, the partition is %d bytes", p.DataBlocks, p.DataBlockSize, data.Size)
		}
		rh := strings.ReplaceAll(data.UUID.String()+hash.UUID.String(), "-", "")
		return ddiVerity{data: data, hash: hash, rootHash: rh, params: p}
	}
	return one(parts.Root, parts.RootVerity), one(parts.Usr, parts.UsrVerity)
}

// line is the verity table line for loop devices dataDev and hashDev: the tree starts at hash
// block 1, after the 512-byte superblock rounded up to a hash block.
func (d ddiVerity) line(dataDev, hashDev string) string {
	salt := "-"
	if len(d.params.Salt) > 0 {
		salt = hex.EncodeToString(d.params.Salt)
	}
	return fmt.Sprintf("1 %s %s %d %d %d 1 sha256 %s %s", dataDev, hashDev,
		d.params.DataBlockSize, d.params.HashBlockSize, d.params.DataBlocks, d.rootHash, salt)
}

// table is the Recorder's rendering: the length in sectors, then the line.
func (d ddiVerity) table(dataDev, hashDev string) string {
	return fmt.Sprintf("%d %s", d.data.Size/512, d.line(dataDev, hashDev))
}

var dmRE = regexp.MustCompile(`/dev/dm-[0-9]+`)

// TestVerityDDI merges a DDI whose root partition has dm-verity: two loop devices (data and
// hash partition), a read-only dm-verity device named kairos-firmware-<image> with the root
// hash Admit verified, and the erofs mounted from /dev/dm-N. A second Merge changes nothing;
// Unmerge takes the mount off, then removes the dm device.
func TestVerityDDI(t *testing.T) {
	f := newFixture(t)
	img := f.verityImage("/var/lib/kairos/extensions/fw-v.raw", firmwareFiles("fw-v", "v.bin"), nil, true)
	file := f.dir + "/sysroot/var/lib/kairos/extensions/fw-v.raw"
	root, _ := readDDIVerity(t, file)
	if got := hex.EncodeToString(img.RootHashes[root.data.Number]); got != root.rootHash || len(img.RootHashes) != 1 {
		t.Fatalf("Admit's root hashes %x, want partition %d: %s", img.RootHashes, root.data.Number, root.rootHash)
	}
	before := f.tree()
	st, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Problems(); len(p) > 0 {
		t.Fatalf("problems: %q", p)
	}
	want := []string{
		fmt.Sprintf("loop $ROOT%s %d %d -> /dev/loop0", strings.TrimPrefix(file, f.dir), root.data.Offset, root.data.Size),
		fmt.Sprintf("loop $ROOT%s %d %d -> /dev/loop1", strings.TrimPrefix(file, f.dir), root.hash.Offset, root.hash.Size),
		"verity kairos-firmware-fw-v " + root.table("/dev/loop0", "/dev/loop1") + " -> /dev/dm-0",
		"mount /dev/dm-0 $ROOT/run/kairos-firmware/images/fw-v erofs 0x7 ",
	}
	calls := f.calls()
	if len(calls) < len(want) || !reflect.DeepEqual(calls[:len(want)], want) {
		t.Fatalf("calls:\n%s\nwant first:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range calls[len(want):] {
		if strings.HasPrefix(c, "loop ") || strings.HasPrefix(c, "verity") || strings.Contains(c, "/dev/loop") {
			t.Errorf("another block device call: %s", c)
		}
	}
	if im := st.Images[0]; im.Device != "/dev/dm-0" || !reflect.DeepEqual(im.Verity, []string{"kairos-firmware-fw-v"}) {
		t.Errorf("image state %+v", im)
	}
	var kinds []string
	for _, a := range st.Actions {
		if a.Image == "fw-v" && a.Kind != ActMkdir && a.Kind != ActLink {
			kinds = append(kinds, a.String())
		}
	}
	wantKinds := []string{
		fmt.Sprintf("loop %s -> /dev/loop0", file), fmt.Sprintf("loop %s -> /dev/loop1", file),
		"dm-verity kairos-firmware-fw-v -> /dev/dm-0 (verity " + root.line("/dev/loop0", "/dev/loop1") + ")",
		"mount /dev/dm-0 on /run/kairos-firmware/images/fw-v type erofs (ro,nosuid,nodev) ",
	}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Errorf("journal:\n%s\nwant:\n%s", strings.Join(kinds, "\n"), strings.Join(wantKinds, "\n"))
	}
	if f.read(attrPath) != "/run/kairos-firmware/images/fw-v/usr/lib/firmware\n" {
		t.Errorf("firmware_class.path = %q", f.read(attrPath))
	}

	// Twice: nothing to do.
	n := len(f.k.Calls)
	if _, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts); err != nil {
		t.Fatal(err)
	}
	if len(f.k.Calls) != n {
		t.Errorf("a second Merge made calls: %q", f.calls()[n:])
	}

	// Unmerge: the mount goes, then the device.
	if err := Unmerge(f.root, f.k, f.opts); err != nil {
		t.Fatal(err)
	}
	rest := strings.Join(f.calls()[n:], "\n")
	unmount := strings.Index(rest, "unmount $ROOT/run/kairos-firmware/images/fw-v ")
	remove := strings.Index(rest, "verity-remove kairos-firmware-fw-v")
	if unmount < 0 || remove < unmount || strings.Count(rest, "verity-remove") != 1 {
		t.Errorf("Unmerge calls:\n%s", rest)
	}
	if len(f.k.dm) != 0 {
		t.Errorf("device-mapper devices left: %v", f.k.dm)
	}
	unmergeClean(t, f, before)
}

// TestVerityDDIUsr merges a DDI with a root partition and a /usr partition with a hash
// partition (systemd allows one verity partition per image): the root partition through a
// loop device, the /usr one through dm-verity device kairos-firmware-<image>-usr, on the root
// one's usr directory.
func TestVerityDDIUsr(t *testing.T) {
	f := newFixture(t)
	img := f.verityImage("/var/lib/kairos/extensions/fw-u.raw",
		map[string]string{"usr/.keep": "", "etc/x": "x"},
		map[string]string{"lib/extension-release.d/extension-release.fw-u": "ID=_any\n", "lib/firmware/u.bin": "u"}, true)
	file := f.dir + "/sysroot/var/lib/kairos/extensions/fw-u.raw"
	root, usr := readDDIVerity(t, file)
	if root.data != nil || usr.data == nil || len(img.RootHashes) != 1 || hex.EncodeToString(img.RootHashes[usr.data.Number]) != usr.rootHash {
		t.Fatalf("Admit's root hashes %x", img.RootHashes)
	}
	before := f.tree()
	st, err := Merge(f.root, f.k, []*manifests.Image{img}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Problems(); len(p) > 0 {
		t.Fatalf("problems: %q", p)
	}
	var got []string
	for _, c := range f.calls() {
		if strings.HasPrefix(c, "verity") || strings.HasPrefix(c, "mount /dev/") || strings.HasPrefix(c, "loop ") {
			got = append(got, strings.Replace(c, "$ROOT"+strings.TrimPrefix(file, f.dir), "FILE", 1))
		}
	}
	var rootPart *gpt.Partition
	for _, p := range mustTable(t, file).Partitions {
		if p.Number != usr.data.Number && p.Number != usr.hash.Number {
			rootPart = &p
		}
	}
	want := []string{
		fmt.Sprintf("loop FILE %d %d -> /dev/loop0", rootPart.Offset, rootPart.Size),
		"mount /dev/loop0 $ROOT/run/kairos-firmware/images/fw-u erofs 0x7 ",
		fmt.Sprintf("loop FILE %d %d -> /dev/loop1", usr.data.Offset, usr.data.Size),
		fmt.Sprintf("loop FILE %d %d -> /dev/loop2", usr.hash.Offset, usr.hash.Size),
		"verity kairos-firmware-fw-u-usr " + usr.table("/dev/loop1", "/dev/loop2") + " -> /dev/dm-0",
		"mount /dev/dm-0 $ROOT/run/kairos-firmware/images/fw-u/usr erofs 0x7 ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !reflect.DeepEqual(st.Images[0].Verity, []string{"kairos-firmware-fw-u-usr"}) || st.Images[0].Device != "/dev/loop0" {
		t.Errorf("image state %+v", st.Images[0])
	}
	if err := Unmerge(f.root, f.k, f.opts); err != nil {
		t.Fatal(err)
	}
	if len(f.k.dm) != 0 {
		t.Errorf("device-mapper devices left: %v", f.k.dm)
	}
	unmergeClean(t, f, before)
}

// TestVerityDDIFailures: an image whose hash partition has no verified root hash is never
// mounted; a dm-verity device that cannot be made, or whose mount fails, leaves nothing behind
// and the other images are merged; a name in use by someone else's device is reported and that
// device is left alone; a dry run makes nothing.
func TestVerityDDIFailures(t *testing.T) {
	setup := func(t *testing.T, admit bool) (*fixture, []*manifests.Image, []string) {
		f := newFixture(t)
		v := f.verityImage("/var/lib/kairos/extensions/fw-v.raw", firmwareFiles("fw-v", "v.bin"), nil, admit)
		other := f.fileImage("/var/lib/kairos/extensions/fw-9.raw", manifests.FormatErofs, firmwareFiles("fw-9", "nine.bin"))
		return f, []*manifests.Image{v, other}, f.tree()
	}
	check := func(t *testing.T, f *fixture, st *State, errWant string, before []string) {
		t.Helper()
		var errs []string
		for _, im := range st.Images {
			if im.Error != "" {
				errs = append(errs, im.Name+": "+im.Error)
			}
		}
		if len(errs) != 1 || !strings.HasPrefix(errs[0], "fw-v: ") || !strings.Contains(errs[0], errWant) {
			t.Errorf("image errors %q, want fw-v's with %q", errs, errWant)
		}
		for _, l := range f.k.table(f.dir) {
			if strings.Contains(l, "images/fw-v") {
				t.Errorf("fw-v mounted: %s", l)
			}
		}
		if f.read(attrPath) != "/run/kairos-firmware/images/fw-9/usr/lib/firmware\n" {
			t.Errorf("the other image's firmware is not given to the kernel: %q", f.read(attrPath))
		}
		if err := Unmerge(f.root, f.k, f.opts); err != nil {
			t.Fatal(err)
		}
		unmergeClean(t, f, before)
	}
	t.Run("not-admitted", func(t *testing.T) {
		f, images, before := setup(t, false)
		st, err := Merge(f.root, f.k, images, f.opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range f.calls() {
			if strings.Contains(c, "fw-v") && !strings.HasPrefix(c, "write ") {
				t.Errorf("a call for the image without a verified root hash: %s", c)
			}
		}
		check(t, f, st, "partition 1 has a dm-verity hash partition (2) but no verified root hash", before)
	})
	// A kernel call that fails: the device-mapper device is gone at once (not at the next
	// Unmerge) and the image's error says which call failed.
	for _, c := range []struct {
		name, call string
		err        error
		want       string
	}{
		{"create-fails", "verity kairos-firmware-fw-v ", fmt.Errorf("dm-verity kairos-firmware-fw-v: DM_TABLE_LOAD: %w", unix.EINVAL),
			"dm-verity kairos-firmware-fw-v: DM_TABLE_LOAD: invalid argument"},
		{"mount-fails", "mount /dev/dm-0 ", fmt.Errorf("mount /dev/dm-0: %w", unix.EIO),
			"mount /dev/dm-0: input/output error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, images, before := setup(t, true)
			f.k.fail = func(call string) error {
				if strings.HasPrefix(call, c.call) {
					return c.err
				}
				return nil
			}
			st, err := Merge(f.root, f.k, images, f.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.k.dm) != 0 {
				t.Errorf("device-mapper devices: %v", f.k.dm)
			}
			check(t, f, st, c.want, before)
		})
	}
	t.Run("name-in-use", func(t *testing.T) {
		f, images, before := setup(t, true)
		f.k.dm["kairos-firmware-fw-v"] = "/dev/dm-7" // someone else's
		st, err := Merge(f.root, f.k, images, f.opts)
		if err != nil {
			t.Fatal(err)
		}
		if f.k.dm["kairos-firmware-fw-v"] != "/dev/dm-7" {
			t.Errorf("someone else's device was touched: %v", f.k.dm)
		}
		check(t, f, st, "DM_DEV_CREATE: device or resource busy", before)
		if f.k.dm["kairos-firmware-fw-v"] != "/dev/dm-7" {
			t.Errorf("Unmerge removed someone else's device: %v", f.k.dm)
		}
	})
	t.Run("dry-run", func(t *testing.T) {
		f, images, before := setup(t, true)
		opts := f.opts
		opts.DryRun = true
		st, err := Merge(f.root, f.k, images, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.k.Calls) != 0 {
			t.Errorf("a dry run made calls: %q", f.calls())
		}
		var got []string
		for _, a := range st.Actions {
			if a.Image == "fw-v" && (a.Kind == ActVerity || a.Kind == ActMount) {
				got = append(got, a.Kind+" "+a.Path+" "+a.Source)
			}
		}
		if want := []string{"verity kairos-firmware-fw-v (verity device)", "mount /run/kairos-firmware/images/fw-v (verity device)"}; !reflect.DeepEqual(got, want) {
			t.Errorf("dry-run journal %q, want %q", got, want)
		}
		if after := f.tree(); !reflect.DeepEqual(after, before) {
			t.Errorf("a dry run changed the tree")
		}
	})
}

// TestCrashVerity stops Merge of a DDI with verity at every kernel call, before and after it
// takes effect, and checks the repair: Unmerge leaves no mount and no dm-verity device, Merge
// makes the same mounts as an uninterrupted merge.
func TestCrashVerity(t *testing.T) {
	images := func(f *fixture) []*manifests.Image {
		return []*manifests.Image{f.verityImage("/var/lib/kairos/extensions/fw-v.raw", firmwareFiles("fw-v", "v.bin"), nil, true)}
	}
	norm := func(lines []string) []string {
		out := normalizeLoops(lines)
		for i, l := range out {
			out[i] = dmRE.ReplaceAllString(l, "/dev/dm-N")
		}
		return out
	}
	ref := newFixture(t)
	ops := &crashOps{Ops: ref.k, at: -1}
	if _, err := Merge(ref.root, ops, images(ref), ref.opts); err != nil {
		t.Fatal(err)
	}
	want := norm(ref.k.table(ref.dir))
	if ops.n < 5 {
		t.Fatalf("only %d kernel calls", ops.n)
	}
	for _, after := range []bool{false, true} {
		for at := 1; at <= ops.n; at++ {
			for _, repair := range []string{"unmerge", "merge"} {
				t.Run(fmt.Sprintf("after-%v-%d-%s", after, at, repair), func(t *testing.T) {
					t.Parallel()
					f := newFixture(t)
					imgs := images(f)
					before := f.tree()
					where := crashed(t, func() error {
						_, err := Merge(f.root, &crashOps{Ops: f.k, at: at, after: after}, imgs, f.opts)
						return err
					})
					if where == "" {
						t.Fatalf("no crash at call %d", at)
					}
					if repair == "merge" {
						st, err := Merge(f.root, f.k, imgs, f.opts)
						if err != nil {
							t.Fatal(err)
						}
						if !st.Complete || len(st.Problems()) > 0 {
							t.Errorf("after a crash at %s: complete %v, problems %q", where, st.Complete, st.Problems())
						}
						if got := norm(f.k.table(f.dir)); !reflect.DeepEqual(got, want) {
							t.Errorf("after a crash at %s, mounts:\n%s\nwant:\n%s", where, strings.Join(got, "\n"), strings.Join(want, "\n"))
						}
						if len(f.k.dm) != 1 {
							t.Errorf("after a crash at %s and a merge: device-mapper devices %v", where, f.k.dm)
						}
					}
					unmergeClean(t, f, before)
					if len(f.k.dm) != 0 {
						t.Errorf("after a crash at %s: device-mapper devices left %v", where, f.k.dm)
					}
				})
			}
		}
	}
}
