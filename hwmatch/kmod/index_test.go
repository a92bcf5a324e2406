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

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// testTrie is depmod's in-memory index (tools/depmod.c: index_insert, index_add_value) with a
// writer for both layouts of the file: pre-order (kmod >= 34, index_write) and post-order
// (earlier versions). The tests write small indexes with it.
type testTrie struct {
	prefix   string
	children map[byte]*testTrie
	values   []testValue
}

type testValue struct {
	priority uint32
	value    string
}

type testEntry struct {
	key, value string
	priority   uint32
}

func buildTestIndex(entries []testEntry, preOrder bool) []byte {
	root := &testTrie{}
	for _, e := range entries {
		root.insert(e.key, e.value, e.priority)
	}
	return root.write(preOrder)
}

func (n *testTrie) insert(key, value string, priority uint32) {
	i := 0
	for {
		for j := 0; j < len(n.prefix); j++ {
			if i+j >= len(key) || n.prefix[j] != key[i+j] {
				// Split: the node keeps prefix[:j], a new child at prefix[j] takes the rest.
				rest := &testTrie{prefix: n.prefix[j+1:], children: n.children, values: n.values}
				n.children, n.values = map[byte]*testTrie{n.prefix[j]: rest}, nil
				n.prefix = n.prefix[:j]
				break
			}
		}
		i += len(n.prefix)
		if i == len(key) {
			n.addValue(value, priority)
			return
		}
		c := key[i]
		child := n.children[c]
		if child == nil {
			if n.children == nil {
				n.children = map[byte]*testTrie{}
			}
			child = &testTrie{prefix: key[i+1:]}
			child.addValue(value, priority)
			n.children[c] = child
			return
		}
		n, i = child, i+1
	}
}

// addValue inserts before the first value of the same or a higher priority, as depmod does.
func (n *testTrie) addValue(value string, priority uint32) {
	k := 0
	for k < len(n.values) && n.values[k].priority < priority {
		k++
	}
	n.values = slices.Insert(n.values, k, testValue{priority, value})
}

func (n *testTrie) chars() []byte {
	var cs []byte
	for c := range n.children {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

func (n *testTrie) mask() uint32 {
	var m uint32
	if n.prefix != "" {
		m |= nodePrefix
	}
	if len(n.children) > 0 {
		m |= nodeChildren
	}
	if len(n.values) > 0 {
		m |= nodeValues
	}
	return m
}

// fields encodes the node itself, children given by character.
func (n *testTrie) fields(refs map[byte]uint32) []byte {
	var b []byte
	if n.prefix != "" {
		b = append(append(b, n.prefix...), 0)
	}
	if cs := n.chars(); len(cs) > 0 {
		first, last := cs[0], cs[len(cs)-1]
		b = append(b, first, last)
		for c := int(first); c <= int(last); c++ {
			b = binary.BigEndian.AppendUint32(b, refs[byte(c)])
		}
	}
	if len(n.values) > 0 {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n.values)))
		for _, v := range n.values {
			b = binary.BigEndian.AppendUint32(b, v.priority)
			b = append(append(b, v.value...), 0)
		}
	}
	return b
}

func (n *testTrie) total() int {
	t := len(n.fields(nil))
	for _, c := range n.children {
		t += c.total()
	}
	return t
}

func (n *testTrie) write(preOrder bool) []byte {
	out := binary.BigEndian.AppendUint32(nil, indexMagic)
	out = binary.BigEndian.AppendUint32(out, indexVersionMajor<<16|1)
	out = append(out, 0, 0, 0, 0)
	var root uint32
	if preOrder {
		root = indexHeaderSize | n.mask()
		out = n.writePre(out)
	} else {
		out, root = n.writePost(out)
	}
	binary.BigEndian.PutUint32(out[8:], root)
	return out
}

func (n *testTrie) writePre(out []byte) []byte {
	refs := map[byte]uint32{}
	next := uint32(len(out) + len(n.fields(nil)))
	for _, c := range n.chars() {
		child := n.children[c]
		refs[c] = next | child.mask()
		next += uint32(child.total())
	}
	out = append(out, n.fields(refs)...)
	for _, c := range n.chars() {
		out = n.children[c].writePre(out)
	}
	return out
}

func (n *testTrie) writePost(out []byte) ([]byte, uint32) {
	refs := map[byte]uint32{}
	for _, c := range n.chars() {
		out, refs[c] = n.children[c].writePost(out)
	}
	off := uint32(len(out))
	return append(out, n.fields(refs)...), off | n.mask()
}

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
func bruteWild(entries []testEntry, key string) []string {
	var out []string
	for _, e := range entries {
		if Match(e.key, key) {
			out = append(out, e.key+"\x00"+e.value)
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
func randomEntries(r *rand.Rand, n int) []testEntry {
	const alphabet = "ab01:-_*?[]!\\"
	var entries []testEntry
	for i := 0; i < n; i++ {
		var key []byte
		if i > 0 && r.IntN(2) == 0 { // extend or cut an earlier key
			prev := entries[r.IntN(len(entries))].key
			key = []byte(prev[:r.IntN(len(prev)+1)])
		}
		for k := r.IntN(6); k > 0; k-- {
			key = append(key, alphabet[r.IntN(len(alphabet))])
		}
		entries = append(entries, testEntry{string(key), fmt.Sprintf("mod%d", r.IntN(5)), uint32(r.IntN(4))})
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
			want = append(want, fmt.Sprintf("%s %s %d", e.key, e.value, e.priority))
		}
		sort.Strings(want)
		for _, preOrder := range []bool{true, false} {
			x, err := parseIndex(buildTestIndex(entries, preOrder))
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
					if f.key == e.key && f.priority <= want.priority {
						want = f
					}
				}
				got, ok, err := x.lookup(e.key)
				if err != nil || !ok || got != want.value {
					t.Fatalf("lookup(%q) = %q, %v, %v; want %q", e.key, got, ok, err, want.value)
				}
			}
			// Wildcard lookup agrees with Match on every key, on keys the patterns match and
			// on random ones.
			probes := []string{"", "a", "zz"}
			for _, e := range entries {
				probes = append(probes, e.key, concreteModalias(sanitizeBrackets(e.key)))
			}
			for k := 0; k < 20; k++ {
				probes = append(probes, string(randomEntries(r, 1)[0].key))
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
	small := []testEntry{
		{"pci:v00008086d*sv*sd*bc*sc*i*", "e1000e", 1},
		{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "e1000e", 1},
		{"usb:v0BDAp8179d*dc*dsc*dp*ic*isc*ip*in*", "r8188eu", 2},
		{"usb:v0BDAp*d*dc*dsc*dp*icFFiscFFipFFin*", "rtl8xxxu", 3},
		{"of:N*T*Cfsl,imx6q_uart", "imx", 4},
		{"acpi*:PNP0C0A:*", "battery", 5},
		{"usb:v13FDp3940d0[0-2]*dc*", "ums_alauda", 6},
		{"fs_tracefs", "tracefs", 0},
	}
	for _, preOrder := range []bool{true, false} {
		data := buildTestIndex(small, preOrder)
		f.Add(data, "pci:v00008086d000010D3sv00001028sd00000000bc02sc00i00")
		f.Add(data, "usb:v13FDp3940d0100dc00")
		f.Add(buildTestIndex(nil, preOrder), "")
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
		var entries []testEntry
		firstValue := map[string]string{}
		if err := x.each(func(k, v string, p uint32) {
			entries = append(entries, testEntry{k, v, p})
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
				probes = append(probes, e.key)
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
	entries := slices.DeleteFunc(randomEntries(rand.New(rand.NewPCG(3, 4)), 60), func(e testEntry) bool { return e.key == "" })
	entries = append(entries, testEntry{"a", "x", 0}, testEntry{"b", "y", 0})
	for _, preOrder := range []bool{true, false} {
		data := buildTestIndex(entries, preOrder)
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
				if _, _, err := x.lookup(e.key); err != nil {
					errs++
				}
				if _, err := x.lookupWild(e.key); err != nil {
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
		data := buildTestIndex(entries, preOrder)
		for bit := 0; bit < 8*len(data); bit++ {
			bad := slices.Clone(data)
			bad[bit/8] ^= 1 << (bit % 8)
			x, err := parseIndex(bad)
			if err != nil {
				continue
			}
			_ = x.each(func(string, string, uint32) {})
			for _, e := range entries {
				_, _, _ = x.lookup(e.key)
				_, _ = x.lookupWild(e.key)
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
	var entries []testEntry
	must(t, aliasIdx.each(func(k, v string, p uint32) {
		got = append(got, k+" "+v)
		entries = append(entries, testEntry{k, v, p})
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

	pre, err := parseIndex(buildTestIndex(entries, true))
	must(t, err)
	if aliasIdx.preOrder || !pre.preOrder {
		t.Fatalf("layouts: Debian's preOrder=%v, rewritten preOrder=%v", aliasIdx.preOrder, pre.preOrder)
	}
	for i, e := range entries {
		if i%50 != 0 {
			continue
		}
		key := concreteModalias(e.key)
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
