package kmod

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hwmatch/kmod/kmodtest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// indexEntries lists an index's keys and values as "key value priority" lines, sorted.
func indexEntries(t testing.TB, x *index) []string {
	t.Helper()
	var all []string
	if err := x.each(func(k, v string, p uint32) { all = append(all, fmt.Sprintf("%s %s %d", k, v, p)) }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(all)
	return all
}

// bruteWild is lookupWild's answer computed from the index's entries: every value whose
// pattern Match-es key.
func bruteWild(entries []kmodtest.Entry, key string) []string {
	var out []string
	for _, e := range entries {
		if Match(e.Key, key) {
			out = append(out, e.Key+"\x00"+e.Value)
		}
	}
	sort.Strings(out)
	return out
}

func wildStrings(matches []indexMatch) []string {
	var out []string
	for _, m := range matches {
		out = append(out, m.pattern+"\x00"+m.value)
	}
	sort.Strings(out)
	return out
}

// randomEntries makes keys that share prefixes and hold wildcards, dashes and brackets.
func randomEntries(r *rand.Rand, n int) []kmodtest.Entry {
	const alphabet = "ab01:-_*?[]!\\"
	var entries []kmodtest.Entry
	for i := 0; i < n; i++ {
		var key []byte
		if i > 0 && r.IntN(2) == 0 { // extend or cut an earlier key
			prev := entries[r.IntN(len(entries))].Key
			key = []byte(prev[:r.IntN(len(prev)+1)])
		}
		for k := r.IntN(6); k > 0; k-- {
			key = append(key, alphabet[r.IntN(len(alphabet))])
		}
		entries = append(entries, kmodtest.Entry{Key: string(key), Value: fmt.Sprintf("mod%d", r.IntN(5)), Priority: uint32(r.IntN(4))})
	}
	return entries
}

func TestIndexRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		entries := randomEntries(r, 1+r.IntN(40))
		if round == 0 {
			entries = nil // an empty index
		}
		var want []string
		for _, e := range entries {
			want = append(want, fmt.Sprintf("%s %s %d", e.Key, e.Value, e.Priority))
		}
		sort.Strings(want)
		for _, preOrder := range []bool{true, false} {
			x, err := parseIndex(kmodtest.Index(entries, preOrder))
			if err != nil {
				t.Fatal(err)
			}
			if x.root&nodeChildren != 0 && x.preOrder != preOrder {
				// (A root without children is at offset 12 in both layouts.)
				t.Fatalf("round %d: layout read as preOrder=%v", round, x.preOrder)
			}
			if got := indexEntries(t, x); !reflect.DeepEqual(got, want) && len(want) > 0 {
				t.Fatalf("round %d preOrder=%v: entries\n%q\nwant\n%q", round, preOrder, got, want)
			}
			// Exact lookup: the key's first stored value: of the lowest priority, the last
			// inserted among equals (depmod's index_add_value).
			for _, e := range entries {
				want := e
				for _, f := range entries {
					if f.Key == e.Key && f.Priority <= want.Priority {
						want = f
					}
				}
				got, ok, err := x.lookup(e.Key)
				if err != nil || !ok || got != want.Value {
					t.Fatalf("lookup(%q) = %q, %v, %v; want %q", e.Key, got, ok, err, want.Value)
				}
			}
			// Wildcard lookup agrees with Match on every key, on keys the patterns match and
			// on random ones.
			probes := []string{"", "a", "zz"}
			for _, e := range entries {
				probes = append(probes, e.Key, concreteModalias(sanitizeBrackets(e.Key)))
			}
			for k := 0; k < 20; k++ {
				probes = append(probes, string(randomEntries(r, 1)[0].Key))
			}
			for _, p := range probes {
				got, err := x.lookupWild(p)
				if err != nil {
					t.Fatalf("lookupWild(%q): %v", p, err)
				}
				if g, w := wildStrings(got), bruteWild(entries, p); !reflect.DeepEqual(g, w) {
					t.Fatalf("round %d preOrder=%v: lookupWild(%q) = %q, Match says %q", round, preOrder, p, g, w)
				}
				for i := 1; i < len(got); i++ {
					if got[i-1].priority > got[i].priority {
						t.Fatalf("lookupWild(%q) not in priority order: %v", p, got)
					}
				}
			}
		}
	}
}

// sanitizeBrackets makes a random key safe for concreteModalias (which expects closed,
// non-empty brackets and no trailing backslash).
func sanitizeBrackets(key string) string {
	if _, ok := normalizeAlias(key); !ok || strings.Contains(key, "[]") || strings.HasSuffix(key, "\\") {
		return strings.NewReplacer("[", "", "]", "", "\\", "").Replace(key)
	}
	return key
}

// fixtureIndex returns a file of the Debian kernel fixture, nil when it is not unpacked (the
// fuzz seeds need no skip).
func fixtureIndex(name string) []byte {
	dir := os.Getenv("KAIROS_FIRMWARE_TEST_KERNEL")
	if dir == "" {
		dir = filepath.Join(testkernel.RepoRoot(), ".cache", "kernel", testkernel.Release)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "lib", "modules", testkernel.Release, name))
	return data
}

func FuzzIndex(f *testing.F) {
	small := []kmodtest.Entry{
		{Key: "pci:v00008086d*sv*sd*bc*sc*i*", Value: "e1000e", Priority: 1},
		{Key: "pci:v00008086d000010D3sv*sd*bc*sc*i*", Value: "e1000e", Priority: 1},
		{Key: "usb:v0BDAp8179d*dc*dsc*dp*ic*isc*ip*in*", Value: "r8188eu", Priority: 2},
		{Key: "usb:v0BDAp*d*dc*dsc*dp*icFFiscFFipFFin*", Value: "rtl8xxxu", Priority: 3},
		{Key: "of:N*T*Cfsl,imx6q_uart", Value: "imx", Priority: 4},
		{Key: "acpi*:PNP0C0A:*", Value: "battery", Priority: 5},
		{Key: "usb:v13FDp3940d0[0-2]*dc*", Value: "ums_alauda", Priority: 6},
		{Key: "fs_tracefs", Value: "tracefs", Priority: 0},
	}
	for _, preOrder := range []bool{true, false} {
		data := kmodtest.Index(small, preOrder)
		f.Add(data, "pci:v00008086d000010D3sv00001028sd00000000bc02sc00i00")
		f.Add(data, "usb:v13FDp3940d0100dc00")
		f.Add(kmodtest.Index(nil, preOrder), "")
	}
	// Real depmod output, small enough to mutate: the built-in indexes of the test kernel.
	for _, name := range []string{"modules.builtin.alias.bin", "modules.builtin.bin"} {
		if data := fixtureIndex(name); data != nil {
			f.Add(data, "crypto_hmac")
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		x, err := parseIndex(data)
		if err != nil {
			return
		}
		// Whatever the data, lookups answer or fail; they never panic or loop.
		_, _, _ = x.lookup(key)
		_, _ = x.lookupWild(key)
		var entries []kmodtest.Entry
		firstValue := map[string]string{}
		if err := x.each(func(k, v string, p uint32) {
			entries = append(entries, kmodtest.Entry{Key: k, Value: v, Priority: p})
			if _, seen := firstValue[k]; !seen {
				firstValue[k] = v
			}
		}); err != nil {
			return
		}
		// An index whose every node reads well answers as its entries say.
		for k, v := range firstValue {
			got, ok, err := x.lookup(k)
			if err != nil || !ok || got != v {
				t.Fatalf("lookup(%q) = %q, %v, %v; the index holds %q", k, got, ok, err, v)
			}
		}
		probes := []string{key}
		for i, e := range entries {
			if i < 8 {
				probes = append(probes, e.Key)
			}
		}
		for _, p := range probes {
			got, err := x.lookupWild(p)
			if err != nil {
				t.Fatalf("lookupWild(%q) on a readable index: %v", p, err)
			}
			if g, w := wildStrings(got), bruteWild(entries, p); !reflect.DeepEqual(g, w) {
				t.Fatalf("lookupWild(%q) = %q, Match says %q", p, g, w)
			}
		}
	})
}

// corrupt returns copies of a well-formed index broken in the ways a reader must survive.
func corruptions(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	x, err := parseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	root, _, err := x.rootNode()
	if err != nil || len(root.children) < 8 {
		t.Fatalf("the index to corrupt needs a root with two children: %v", err)
	}
	childrenAt := cap(data) - cap(root.children) // where the root's child slots start
	firstChild := childrenAt
	for binary.BigEndian.Uint32(data[firstChild:]) == 0 {
		firstChild += 4
	}
	secondChild := firstChild + 4
	for binary.BigEndian.Uint32(data[secondChild:]) == 0 {
		secondChild += 4
	}
	edit := func(fn func(b []byte) []byte) []byte { return fn(slices.Clone(data)) }
	return map[string][]byte{
		"bad magic":       edit(func(b []byte) []byte { b[0] ^= 0xff; return b }),
		"version 3":       edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 3<<16); return b }),
		"header only":     edit(func(b []byte) []byte { return b[:8] }),
		"root outside":    edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], nodeValues|uint32(len(b))); return b }),
		"cut in the node": edit(func(b []byte) []byte { return b[:childrenAt+2] }),
		"child outside": edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[firstChild:], nodeChildren|0x0FFFFFF0)
			return b
		}),
		"child is the root": edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[firstChild:], binary.BigEndian.Uint32(b[8:]))
			return b
		}),
		"siblings share a subtree": edit(func(b []byte) []byte {
			copy(b[secondChild:secondChild+4], b[firstChild:firstChild+4])
			return b
		}),
		"bad children range": edit(func(b []byte) []byte { b[childrenAt-2], b[childrenAt-1] = 0x7f, 0x01; return b }),
		"too many values": edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[8:], binary.BigEndian.Uint32(b[8:])|nodeValues)
			return b
		}),
	}
}

func TestIndexRejectsMalformed(t *testing.T) {
	// No empty key: the root has no values of its own, "too many values" gives it some.
	entries := slices.DeleteFunc(randomEntries(rand.New(rand.NewPCG(3, 4)), 60), func(e kmodtest.Entry) bool { return e.Key == "" })
	entries = append(entries, kmodtest.Entry{Key: "a", Value: "x", Priority: 0}, kmodtest.Entry{Key: "b", Value: "y", Priority: 0})
	for _, preOrder := range []bool{true, false} {
		data := kmodtest.Index(entries, preOrder)
		// The root's prefix is empty ('a' and 'b' differ at once): its children slots sit
		// right after the header in pre-order and at the file's end in post-order.
		for name, bad := range corruptions(t, data) {
			x, err := parseIndex(bad)
			if err != nil {
				continue // refused at open: fine
			}
			errs := 0
			if err := x.each(func(string, string, uint32) {}); err != nil {
				errs++
			}
			for _, e := range entries {
				if _, _, err := x.lookup(e.Key); err != nil {
					errs++
				}
				if _, err := x.lookupWild(e.Key); err != nil {
					errs++
				}
			}
			if errs == 0 {
				t.Errorf("preOrder=%v %s: no lookup noticed", preOrder, name)
			}
		}
	}
}

// TestIndexSurvivesBitFlips flips every bit of a small index in turn: lookups answer or fail.
func TestIndexSurvivesBitFlips(t *testing.T) {
	entries := randomEntries(rand.New(rand.NewPCG(5, 6)), 12)
	for _, preOrder := range []bool{true, false} {
		data := kmodtest.Index(entries, preOrder)
		for bit := 0; bit < 8*len(data); bit++ {
			bad := slices.Clone(data)
			bad[bit/8] ^= 1 << (bit % 8)
			x, err := parseIndex(bad)
			if err != nil {
				continue
			}
			_ = x.each(func(string, string, uint32) {})
			for _, e := range entries {
				_, _, _ = x.lookup(e.Key)
				_, _ = x.lookupWild(e.Key)
			}
		}
	}
}

// TestIndexDebianMatchesTextFiles reads every entry of the real kernel's modules.alias.bin and
// modules.dep.bin (depmod of kmod 30: post-order) and compares them with modules.alias and
// modules.dep; then writes the same entries in pre-order and checks both layouts answer alike.
func TestIndexDebianMatchesTextFiles(t *testing.T) {
	dir := testkernel.ModulesDir(t)
	fsys := vfs.NewPathFS(vfs.OSFS, dir)
	open := func(name string) *index {
		x, err := openIndex(fsys, "/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if !x.mapped {
			t.Errorf("%s was read, not mapped", name)
		}
		t.Cleanup(func() { x.close() })
		return x
	}
	aliasIdx, depIdx := open("modules.alias.bin"), open("modules.dep.bin")

	text, err := os.ReadFile(filepath.Join(dir, "modules.alias"))
	must(t, err)
	var want []string
	for _, line := range strings.Split(string(text), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "alias" {
			if p, ok := normalizeAlias(f[1]); ok {
				want = append(want, p+" "+f[2])
			}
		}
	}
	sort.Strings(want)
	var got []string
	var entries []kmodtest.Entry
	must(t, aliasIdx.each(func(k, v string, p uint32) {
		got = append(got, k+" "+v)
		entries = append(entries, kmodtest.Entry{Key: k, Value: v, Priority: p})
	}))
	sort.Strings(got)
	if len(got) < 20000 || !reflect.DeepEqual(got, want) {
		t.Fatalf("modules.alias.bin holds %d entries, modules.alias %d (normalized); they differ", len(got), len(want))
	}

	text, err = os.ReadFile(filepath.Join(dir, "modules.dep"))
	must(t, err)
	deps := 0
	for _, line := range strings.Split(string(text), "\n") {
		file, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps++
		v, found, err := depIdx.lookup(moduleNameFromPath(file))
		if err != nil || !found || v != line {
			t.Errorf("modules.dep.bin[%s] = %q, %v, %v; modules.dep says %q", moduleNameFromPath(file), v, found, err, line)
		}
	}
	depCount := 0
	must(t, depIdx.each(func(string, string, uint32) { depCount++ }))
	if depCount != deps {
		t.Errorf("modules.dep.bin holds %d modules, modules.dep %d", depCount, deps)
	}

	pre, err := parseIndex(kmodtest.Index(entries, true))
	must(t, err)
	if aliasIdx.preOrder || !pre.preOrder {
		t.Fatalf("layouts: Debian's preOrder=%v, rewritten preOrder=%v", aliasIdx.preOrder, pre.preOrder)
	}
	for i, e := range entries {
		if i%50 != 0 {
			continue
		}
		key := concreteModalias(e.Key)
		a, err1 := aliasIdx.lookupWild(key)
		b, err2 := pre.lookupWild(key)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(wildStrings(a), wildStrings(b)) || len(a) == 0 {
			t.Errorf("lookupWild(%q): post-order %d matches (%v), pre-order %d (%v)", key, len(a), err1, len(b), err2)
		}
	}
}

func TestIndexCloseUnmaps(t *testing.T) {
	x, err := openIndex(vfs.OSFS, filepath.Join(testkernel.ModulesDir(t), "modules.dep.bin"))
	must(t, err)
	v, ok, err := x.lookup("bnx2")
	if err != nil || !ok {
		t.Fatalf("lookup(bnx2): %v %v", ok, err)
	}
	must(t, x.close())
	if x.data != nil {
		t.Error("close kept the data")
	}
	must(t, x.close()) // a second close is harmless
	// v was copied out of the mapping: reading it now would fault otherwise.
	if !strings.HasPrefix(v, "kernel/drivers/net/ethernet/broadcom/bnx2.ko") {
		t.Errorf("bnx2's entry after close: %q", v)
	}
	if _, _, err := x.lookup("bnx2"); err != errIndexClosed {
		t.Errorf("lookup after close: %v, want errIndexClosed", err)
	}
	if _, err := x.lookupWild("bnx2"); err != errIndexClosed {
		t.Errorf("lookupWild after close: %v, want errIndexClosed", err)
	}
}
