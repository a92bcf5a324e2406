package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hwmatch/kmod/kmodtest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// hideIndexes is a file system without depmod's binary indexes: kmod answers from the text
// files, as in an initramfs that ships only those.
type hideIndexes struct{ vfs.FS }

func hidden(name string) error {
	if strings.HasSuffix(name, ".bin") {
		return &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return nil
}

func (h hideIndexes) ReadFile(name string) ([]byte, error) {
	if err := hidden(name); err != nil {
		return nil, err
	}
	return h.FS.ReadFile(name)
}

func (h hideIndexes) Stat(name string) (fs.FileInfo, error) {
	if err := hidden(name); err != nil {
		return nil, err
	}
	return h.FS.Stat(name)
}

func (h hideIndexes) Open(name string) (fs.File, error) {
	if err := hidden(name); err != nil {
		return nil, err
	}
	return h.FS.Open(name)
}

// unmappable is a file system kmod cannot map files of (it has no PathFS Join): the indexes are
// read into memory.
type unmappable struct{ vfs.FS }

func openKernel(t *testing.T, fsys vfs.FS, release string) *Kernel {
	t.Helper()
	k, err := Open(fsys, release)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// debianModaliases are the modaliases of TestModulesAgreeWithModprobe, and more: every alias
// pattern of the real kernel made concrete ('*' as nothing), every third one again with each
// '*' as one character (a digit, a letter, '-' or '_', which normalization equates), and
// variants of the patterns that hold '-' or '_' with those swapped.
func debianModaliases(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "lib/modules", testkernel.Release, "modules.alias"))
	must(t, err)
	defer f.Close()
	modaliases := []string{"pci:v0000FFFFd0000FFFFsv00000000sd00000000bc00sc00i00", "usb:v0000p0000d0000dc00dsc00dp00ic00isc00ip00in00",
		"crypto-hmac", "crypto_hmac", "fs-tracefs", "", "bad]alias", "unterminated[0-"}
	fill := []string{"0", "A", "-", "_", "z9"}
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[0] != "alias" {
			continue
		}
		p := fields[1]
		modaliases = append(modaliases, concreteModalias(p))
		if n%3 == 0 {
			modaliases = append(modaliases, concreteModaliasWith(p, func(i int) string { return fill[(n+i)%len(fill)] }))
		}
		if strings.ContainsAny(p, "-_") {
			swapped := strings.Map(func(r rune) rune {
				switch r {
				case '-':
					return '_'
				case '_':
					return '-'
				}
				return r
			}, concreteModalias(p))
			modaliases = append(modaliases, swapped)
		}
	}
	must(t, sc.Err())
	return modaliases
}

// TestIndexAndTextAnswerAlike resolves ~37,000 modaliases of the real kernel three ways: from
// modules.alias.bin mapped, from it read into memory, and from modules.alias; and finds every
// module of modules.dep through modules.dep.bin and through modules.dep.
func TestIndexAndTextAnswerAlike(t *testing.T) {
	dir := testkernel.Dir(t)
	root := vfs.NewPathFS(vfs.OSFS, dir)
	mapped := openKernel(t, root, testkernel.Release)
	read := openKernel(t, unmappable{root}, testkernel.Release)
	text := openKernel(t, hideIndexes{root}, testkernel.Release)
	if mapped.aliasIndex == nil || !mapped.aliasIndex.mapped {
		t.Fatal("modules.alias.bin is not mapped")
	}
	if read.aliasIndex == nil || read.aliasIndex.mapped {
		t.Fatal("modules.alias.bin is not read into memory on a file system that cannot map it")
	}
	if text.aliasIndex != nil {
		t.Fatal("the hidden index was opened")
	}

	modaliases := debianModaliases(t, dir)
	found, specific := mapped.ResolveSpecific(modaliases)
	textFound, textSpecific := text.ResolveSpecific(modaliases)
	readFound, readSpecific := read.ResolveSpecific(modaliases)
	if !reflect.DeepEqual(found, textFound) {
		for _, m := range modaliases {
			if !reflect.DeepEqual(found[m], textFound[m]) {
				t.Errorf("%q: modules.alias.bin finds %v, modules.alias %v", m, found[m], textFound[m])
			}
		}
	}
	if !reflect.DeepEqual(specific, textSpecific) {
		t.Error("the modules naming the product differ between modules.alias.bin and modules.alias")
	}
	if !reflect.DeepEqual(found, readFound) || !reflect.DeepEqual(specific, readSpecific) {
		t.Error("the mapped and the read index answer differently")
	}
	if _, ok := found["crypto-hmac"]; !ok || !reflect.DeepEqual(found["crypto-hmac"], found["crypto_hmac"]) {
		t.Errorf("crypto-hmac finds %v, crypto_hmac %v: '-' and '_' are the same to kmod", found["crypto-hmac"], found["crypto_hmac"])
	}
	t.Logf("%d modaliases, %d resolved, %d to a module naming the product", len(modaliases), len(found), len(specific))
	if len(found) < 25000 {
		t.Errorf("only %d modaliases resolved: the comparison proves little", len(found))
	}

	data, err := os.ReadFile(filepath.Join(dir, "lib/modules", testkernel.Release, "modules.dep"))
	must(t, err)
	names := []string{"no_such_module"}
	for _, line := range strings.Split(string(data), "\n") {
		if file, _, ok := strings.Cut(line, ":"); ok {
			names = append(names, moduleNameFromPath(file))
		}
	}
	for _, name := range names {
		p1, err1 := mapped.modulePath(name)
		p2, err2 := text.modulePath(name)
		if p1 != p2 || (err1 == nil) != (err2 == nil) || errors.Is(err1, fs.ErrNotExist) != errors.Is(err2, fs.ErrNotExist) {
			t.Errorf("module %s: modules.dep.bin gives %q, %v; modules.dep %q, %v", name, p1, err1, p2, err2)
		}
	}
	if mapped.depIndex == nil || !mapped.depIndex.mapped {
		t.Error("modules.dep.bin was not used")
	}
	for _, k := range []*Kernel{mapped, read, text} {
		if len(k.Warnings) > 0 {
			t.Errorf("warnings: %q", k.Warnings)
		}
	}
}

// smallTree writes a modules directory whose indexes tests may break: its text files, and
// the binary indexes depmod would write for them (pre- or post-order).
func smallTree(t *testing.T, preOrder bool) (root string, modaliases []string) {
	t.Helper()
	aliases := [][2]string{
		{"pci:v00008086d*sv*sd*bc02sc00i*", "e1000e"},
		{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "e1000e"},
		{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "igb-extra"},
		{"pci:v*d*sv*sd*bc0Csc03i30*", "xhci-pci"},
		{"pci:v000010DEd*sv*sd*bc03sc*i*", "nouveau"},
		{"usb:v0BDAp8179d*dc*dsc*dp*ic*isc*ip*in*", "r8188eu"},
		{"usb:v0BDAp*d*dc*dsc*dp*icFFiscFFipFFin*", "rtl8xxxu"},
		{"usb:v13FDp3940d0[0-2]*dc*dsc*dp*ic*isc*ip*in*", "ums-alauda"},
		{"of:N*T*Cfsl,imx6q-uart", "imx"},
		{"of:N*T*Cfsl,imx6q-uartC*", "imx"},
		{"acpi*:PNP0C0A:*", "battery"},
		{"fs-tracefs", "tracefs"},
		{"crypto-hmac", "hmac"},
	}
	var text strings.Builder
	var entries []kmodtest.Entry
	for i, a := range aliases {
		fmt.Fprintf(&text, "alias %s %s\n", a[0], a[1])
		p, _ := normalizeAlias(a[0])
		entries = append(entries, kmodtest.Entry{Key: p, Value: normalizeName(a[1]), Priority: uint32(i)})
		modaliases = append(modaliases, concreteModalias(a[0]), concreteModaliasWith(a[0], func(int) string { return "0A" }))
	}
	modaliases = append(modaliases, "crypto_hmac", "of:NuartT<NULL>Cfsl,imx6q_uart", "usb:v13FDp3940d0300dc00dsc00dp00ic00isc00ip00in00")
	root = t.TempDir()
	dir := filepath.Join(root, "lib/modules/6.9.0")
	must(t, os.MkdirAll(dir, 0o755))
	write := func(name string, data []byte) { must(t, os.WriteFile(filepath.Join(dir, name), data, 0o644)) }
	write("modules.alias", []byte(text.String()))
	write("modules.alias.bin", kmodtest.Index(entries, preOrder))
	var dep strings.Builder
	var deps []kmodtest.Entry
	for i, m := range []string{"e1000e", "igb_extra", "xhci-pci", "nouveau", "r8188eu", "rtl8xxxu", "ums-alauda", "imx", "battery", "tracefs", "hmac"} {
		line := fmt.Sprintf("kernel/drivers/%s.ko.xz:", m)
		if i > 0 {
			line += " kernel/drivers/e1000e.ko.xz"
		}
		fmt.Fprintln(&dep, line)
		deps = append(deps, kmodtest.Entry{Key: normalizeName(m), Value: line, Priority: uint32(i)})
	}
	write("modules.dep", []byte(dep.String()))
	write("modules.dep.bin", kmodtest.Index(deps, preOrder))
	// A built-in module answers only where no loadable one does.
	write("modules.builtin.modinfo", []byte("builtin-x.alias=pci:v0000ABCDd*\x00builtin_y.alias=fs-tracefs\x00"))
	modaliases = append(modaliases, "pci:v0000ABCDd00000001sv00000000sd00000000bc00sc00i00")
	return root, modaliases
}

var smallModules = []string{"e1000e", "igb_extra", "xhci_pci", "nouveau", "r8188eu", "rtl8xxxu", "ums_alauda", "imx", "battery", "tracefs", "hmac", "absent"}

type kernelAnswers struct {
	found, specific map[string][]string
	paths           []string
}

func answers(k *Kernel, modaliases []string) kernelAnswers {
	var a kernelAnswers
	a.found, a.specific = k.ResolveSpecific(modaliases)
	for _, m := range smallModules {
		p, err := k.modulePath(m)
		a.paths = append(a.paths, fmt.Sprintf("%s %v", p, err))
	}
	return a
}

// TestMalformedIndexFallsBack breaks modules.alias.bin and modules.dep.bin in many ways: each
// time kmod warns, naming the file and the problem, and answers from the text files exactly
// as with no index at all.
func TestMalformedIndexFallsBack(t *testing.T) {
	for _, preOrder := range []bool{true, false} {
		root, modaliases := smallTree(t, preOrder)
		want := answers(openKernel(t, hideIndexes{vfs.NewPathFS(vfs.OSFS, root)}, "6.9.0"), modaliases)
		if got := answers(openKernel(t, vfs.NewPathFS(vfs.OSFS, root), "6.9.0"), modaliases); !reflect.DeepEqual(got, want) {
			t.Fatalf("preOrder=%v: the intact indexes answer\n%v\nthe text files\n%v", preOrder, got, want)
		}
		if len(want.found) < 20 || len(want.specific) < 5 {
			t.Fatalf("the small tree resolves only %d modaliases: %v", len(want.found), want.found)
		}
		dir := filepath.Join(root, "lib/modules/6.9.0")
		for _, name := range []string{"modules.alias.bin", "modules.dep.bin"} {
			good, err := os.ReadFile(filepath.Join(dir, name))
			must(t, err)
			for what, bad := range corruptions(t, good) {
				must(t, os.WriteFile(filepath.Join(dir, name), bad, 0o644))
				k := openKernel(t, vfs.NewPathFS(vfs.OSFS, root), "6.9.0")
				got := answers(k, modaliases)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("preOrder=%v %s %s: answers\n%v\nwant\n%v", preOrder, name, what, got, want)
				}
				text := strings.TrimSuffix(name, ".bin")
				warned := false
				for _, w := range k.Warnings {
					if strings.HasPrefix(w, filepath.Join("/lib/modules/6.9.0", name)+": ") && strings.HasSuffix(w, "; reading "+text+" instead") {
						warned = true
					}
				}
				if !warned || len(k.Warnings) != 1 {
					t.Errorf("preOrder=%v %s %s: warnings %q", preOrder, name, what, k.Warnings)
				}
			}
			must(t, os.WriteFile(filepath.Join(dir, name), good, 0o644))
		}
	}
}

// TestKernelClose: Close unmaps the indexes, a second Close does nothing, and what lookups
// returned before stays valid (it was copied out of the mappings).
func TestKernelClose(t *testing.T) {
	root, modaliases := smallTree(t, false)
	k, err := Open(vfs.NewPathFS(vfs.OSFS, root), "6.9.0")
	must(t, err)
	before := answers(k, modaliases)
	alias, dep := k.aliasIndex, k.depIndex
	if alias == nil || !alias.mapped || dep == nil || !dep.mapped {
		t.Fatal("the indexes are not mapped")
	}
	must(t, k.Close())
	if k.aliasIndex != nil || k.depIndex != nil || alias.data != nil || dep.data != nil {
		t.Error("Close kept the mappings")
	}
	must(t, k.Close())
	want := answers(openKernel(t, hideIndexes{vfs.NewPathFS(vfs.OSFS, root)}, "6.9.0"), modaliases)
	if !reflect.DeepEqual(before, want) { // reads every string returned before Close
		t.Errorf("answers read after Close\n%v\nwant\n%v", before, want)
	}
	// Lookups after Close are not allowed; should one happen anyway it touches no released
	// memory (it reads the text files).
	if after := answers(k, modaliases); !reflect.DeepEqual(after, want) || k.aliasIndex != nil || k.depIndex != nil {
		t.Errorf("a lookup after Close answered %v or reopened an index", after)
	}
}

// TestBinOnlyTree: a tree with the indexes and no text files (the text is only the fallback)
// resolves and finds modules without warnings.
func TestBinOnlyTree(t *testing.T) {
	root, modaliases := smallTree(t, true)
	want := answers(openKernel(t, vfs.NewPathFS(vfs.OSFS, root), "6.9.0"), modaliases)
	dir := filepath.Join(root, "lib/modules/6.9.0")
	must(t, os.Remove(filepath.Join(dir, "modules.alias")))
	must(t, os.Remove(filepath.Join(dir, "modules.dep")))
	k := openKernel(t, vfs.NewPathFS(vfs.OSFS, root), "6.9.0")
	if got := answers(k, modaliases); !reflect.DeepEqual(got, want) {
		t.Errorf("without the text files\n%v\nwant\n%v", got, want)
	}
	if len(k.Warnings) > 0 {
		t.Errorf("warnings: %q", k.Warnings)
	}
}

// BenchmarkOpenResolve opens the real kernel, resolves 60 PCI and USB modaliases (a machine's
// worth) and finds their modules' files, as Detect does: through the mapped indexes, and
// through the text files alone.
func BenchmarkOpenResolve(b *testing.B) {
	dir := testkernel.Dir(b)
	data, err := os.ReadFile(filepath.Join(dir, "lib/modules", testkernel.Release, "modules.alias"))
	if err != nil {
		b.Fatal(err)
	}
	var modaliases []string
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && (strings.HasPrefix(f[1], "pci:") || strings.HasPrefix(f[1], "usb:")) {
			if n++; n%300 == 0 {
				modaliases = append(modaliases, concreteModalias(f[1]))
			}
		}
	}
	root := vfs.NewPathFS(vfs.OSFS, dir)
	for _, c := range []struct {
		name string
		fsys vfs.FS
	}{{"index", root}, {"text", hideIndexes{root}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				k, err := Open(c.fsys, testkernel.Release)
				if err != nil {
					b.Fatal(err)
				}
				found := k.Resolve(modaliases)
				for _, mods := range found {
					for _, m := range mods {
						k.modulePath(m)
					}
				}
				k.Close()
			}
		})
	}
}
