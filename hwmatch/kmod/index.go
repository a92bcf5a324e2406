package kmod

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sort"

	vfs "github.com/twpayne/go-vfs/v4"
	"golang.org/x/sys/unix"
)

// This file reads depmod's binary indexes (modules.alias.bin, modules.dep.bin,
// modules.symbols.bin, ...), the files libkmod itself answers from. The format, as depmod writes
// it (tools/depmod.c, index_write) and libkmod reads it (libkmod/libkmod-index.c):
//
//	header: uint32 magic 0xB007F457, uint32 version (major 2 in the high half), uint32 root
//	node: at (offset & 0x0FFFFFFF), its fields present as the offset's top bits say:
//	  0x80000000  prefix: NUL-terminated characters the node's key continues with
//	  0x20000000  children: uint8 first, uint8 last, uint32 child[last-first+1] (0 = none)
//	  0x40000000  values: uint32 count, then count × (uint32 priority, NUL-terminated value)
//
// All integers are big-endian. The keys form a radix trie: a node's key is its parent's key,
// the character of the child slot it hangs from, and its prefix. Children are indexed by 7-bit
// ASCII characters. depmod writes children in character order, each child's subtree whole
// before the next one's; kmod 34 and later write a node before its children (pre-order: the
// root is at offset 12), earlier versions after them (post-order: the root is the last node;
// Debian 12 ships kmod 30). Either way siblings come in increasing offsets and each subtree
// lies in its own range of the file, between its siblings'. The reader checks exactly that,
// for the order the root's place shows, which makes every walk visit each node at most once
// and so bounds it by the file's size whatever the file holds. No offset or length is used
// before it is checked against the data; an index that breaks the layout is an error, never a
// panic, a loop or an unbounded recursion.

const (
	indexMagic        = 0xB007F457
	indexVersionMajor = 2
	indexHeaderSize   = 12
	indexChildMax     = 128 // children are indexed by 7-bit characters

	nodePrefix   = 0x80000000
	nodeValues   = 0x40000000
	nodeChildren = 0x20000000
	nodeMask     = 0x0FFFFFFF

	// maxIndexKey bounds the keys a wildcard walk assembles: depmod normalises aliases into a
	// PATH_MAX buffer (alias_normalize), so no valid key is longer.
	maxIndexKey = 4096
)

// index is one binary index, memory-mapped or (on a file system that is not the real one) read
// into memory. Nothing it returns points into data: values and keys are copied into Go strings,
// so they outlive close.
type index struct {
	data     []byte
	mapped   bool
	unmap    runtime.Cleanup // unmaps data should the index be dropped without close
	root     uint32          // the root node's offset with its flags; 0 for an empty index
	preOrder bool            // nodes precede their children (kmod >= 34), else follow them
}

// indexNode is one decoded node. prefix, children and values are slices of the index data.
type indexNode struct {
	off uint32 // where the node starts (flags removed)
	// lo and hi bound its descendants' offsets: [lo, hi) is the node's own range of the file,
	// after its fields in pre-order, before the node in post-order.
	lo, hi   uint32
	prefix   []byte
	first    byte   // the character of children[0:4]
	children []byte // 4 bytes per character from first; empty when the node has none
	nvalues  uint32
	values   []byte // from the first value to the end of the data
}

// parseIndex checks the header of an index held in data. Nodes are checked as lookups reach
// them, so that opening a large index touches one page.
func parseIndex(data []byte) (*index, error) {
	if len(data) < indexHeaderSize {
		return nil, fmt.Errorf("%d bytes: shorter than the %d-byte header", len(data), indexHeaderSize)
	}
	if len(data) > nodeMask+1 {
		// Offsets have 28 bits: a larger file cannot be depmod's.
		return nil, fmt.Errorf("%d bytes: larger than node offsets can address", len(data))
	}
	if magic := binary.BigEndian.Uint32(data); magic != indexMagic {
		return nil, fmt.Errorf("magic %#08x, not %#08x: not a kmod index", magic, uint32(indexMagic))
	}
	if v := binary.BigEndian.Uint32(data[4:]); v>>16 != indexVersionMajor {
		return nil, fmt.Errorf("format version %d.%d, only %d.x is known", v>>16, v&0xffff, indexVersionMajor)
	}
	x := &index{data: data, root: binary.BigEndian.Uint32(data[8:])}
	if x.root&^nodeMask == 0 {
		// A root without prefix, children or values, as depmod writes for an index with no
		// keys (at the end of the file): nothing to find.
		x.root = 0
	}
	if off := x.root & nodeMask; off != 0 && (off < indexHeaderSize || int(off) >= len(data)) {
		return nil, fmt.Errorf("root node offset %d outside the file (%d bytes)", off, len(data))
	}
	x.preOrder = x.root&nodeMask == indexHeaderSize
	return x, nil
}

// errNoIndex says an index file does not exist: the text file is used, with no warning.
var errNoIndex = errors.New("no index")

// openIndex maps the index at name (a path under fsys) read-only, when fsys shows the real file
// system at some directory (vfs.OSFS, a vfs.PathFS over it); otherwise it reads the file into
// memory. A missing file is errNoIndex.
func openIndex(fsys vfs.FS, name string) (*index, error) {
	if real, ok := realPath(fsys, name); ok {
		data, final, err := mapFile(fsys, name, real)
		if err == nil {
			x, err := parseIndex(data)
			if err != nil {
				_ = unix.Munmap(data)
				return nil, err
			}
			x.mapped = true
			x.unmap = runtime.AddCleanup(x, func(data []byte) { _ = unix.Munmap(data) }, data)
			return x, nil
		}
		if final {
			return nil, err
		}
		// Not mapped (missing, not the file fsys shows, mmap refused): read through fsys,
		// which tells those apart.
	}
	data, err := fsys.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoIndex
	}
	if err != nil {
		return nil, err
	}
	return parseIndex(data)
}

var errNotSameFile = errors.New("not the file the file system shows")

// realPath is where name under fsys lives on the real file system, when fsys is known to be a
// view of it: vfs.OSFS itself, or anything with vfs.PathFS's Join (vfst.TestFS too).
func realPath(fsys vfs.FS, name string) (string, bool) {
	if fsys == vfs.FS(vfs.OSFS) {
		return name, true
	}
	j, ok := fsys.(interface {
		Join(op, name string) (string, error)
	})
	if !ok {
		return "", false
	}
	p, err := j.Join("Join", name)
	return p, err == nil
}

// mapFile maps the real file real, which must be the file fsys shows at name: a PathFS may wrap
// a file system other than the real one, and its Join then names a path of that one. final
// says the error is about the file itself (no reading it would do better).
func mapFile(fsys vfs.FS, name, real string) (data []byte, final bool, err error) {
	f, err := os.Open(real)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if fsys != vfs.FS(vfs.OSFS) {
		if shown, err := fsys.Stat(name); err != nil || !os.SameFile(shown, info) {
			return nil, false, errNotSameFile
		}
	}
	if !info.Mode().IsRegular() {
		return nil, true, errors.New("not a regular file")
	}
	size := info.Size()
	if size < indexHeaderSize {
		return nil, true, fmt.Errorf("%d bytes: shorter than the %d-byte header", size, indexHeaderSize)
	}
	if size > nodeMask+1 {
		return nil, true, fmt.Errorf("%d bytes: larger than node offsets can address", size)
	}
	// MAP_PRIVATE and PROT_READ as libkmod maps them (index_mm_open). depmod replaces an index
	// by renaming a new file over it, so the mapped file is not rewritten under us.
	data, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, false, fmt.Errorf("mmap: %w", err)
	}
	return data, false, nil
}

// close releases the index's memory. Nothing read from it before refers to that memory; using
// the index afterwards is an error the lookups report.
func (x *index) close() error {
	if x == nil || x.data == nil {
		return nil
	}
	data := x.data
	x.data = nil
	if x.mapped {
		x.unmap.Stop()
		return unix.Munmap(data)
	}
	return nil
}

var errIndexClosed = errors.New("index used after close")

func (x *index) malformed(off uint32, format string, args ...any) error {
	return fmt.Errorf("node at offset %d: %s", off, fmt.Sprintf(format, args...))
}

// rootNode returns the root, ok false for an empty index.
func (x *index) rootNode() (n indexNode, ok bool, err error) {
	if x.data == nil {
		return n, false, errIndexClosed
	}
	if x.root&nodeMask == 0 {
		return n, false, nil
	}
	off := x.root & nodeMask
	if x.preOrder {
		n, err = x.node(x.root, off+1, uint32(len(x.data)))
	} else {
		n, err = x.node(x.root, indexHeaderSize, off)
	}
	return n, err == nil, err
}

// node decodes the node that ref (an offset with its flags) points to, whose descendants must
// lie in [lo, hi).
func (x *index) node(ref, lo, hi uint32) (indexNode, error) {
	off := ref & nodeMask
	n := indexNode{off: off, lo: lo, hi: hi}
	size := uint32(len(x.data))
	if off < indexHeaderSize || off >= size || hi > size {
		return n, fmt.Errorf("node offset %d outside the file (%d bytes)", off, size)
	}
	d := x.data
	p := off
	if ref&nodePrefix != 0 {
		end := p
		for end < size && d[end] != 0 {
			end++
		}
		if end == size {
			return n, x.malformed(off, "prefix runs past the end of the file")
		}
		n.prefix, p = d[p:end], end+1
	}
	if ref&nodeChildren != 0 {
		if size-p < 2 {
			return n, x.malformed(off, "children range cut short")
		}
		first, last := d[p], d[p+1]
		if first > last || last >= indexChildMax {
			return n, x.malformed(off, "children range %#x-%#x", first, last)
		}
		count := uint32(last-first) + 1
		p += 2
		if (size-p)/4 < count {
			return n, x.malformed(off, "%d children run past the end of the file", count)
		}
		n.first, n.children, p = first, d[p:p+4*count], p+4*count
	}
	if ref&nodeValues != 0 {
		if size-p < 4 {
			return n, x.malformed(off, "value count cut short")
		}
		n.nvalues = binary.BigEndian.Uint32(d[p:])
		p += 4
		if n.nvalues > (size-p)/5 { // a value takes at least 5 bytes
			return n, x.malformed(off, "%d values do not fit in the file", n.nvalues)
		}
		n.values = d[p:]
	}
	if x.preOrder && n.lo < p {
		n.lo = p // the children follow the node's fields
	}
	return n, nil
}

// childRefs decodes and checks n's child slots into refs (indexed from n.first): children lie
// in n's range, in increasing offsets, which makes the ranges of siblings' subtrees disjoint.
func (x *index) childRefs(n *indexNode, refs *[indexChildMax]uint32) (int, error) {
	count := len(n.children) / 4
	lo := n.lo
	for i := 0; i < count; i++ {
		ref := binary.BigEndian.Uint32(n.children[4*i:])
		refs[i] = ref
		off := ref & nodeMask
		if off == 0 {
			continue
		}
		if off < lo || off >= n.hi {
			return 0, x.malformed(n.off, "child %q at offset %d outside [%d, %d): children must lie in their parent's range, after each other",
				rune(int(n.first)+i), off, lo, n.hi)
		}
		lo = off + 1
	}
	return count, nil
}

// childNode decodes child i of n (refs from childRefs), giving it its range of the file: from
// itself to its next sibling in pre-order, from its previous sibling to itself in post-order.
func (x *index) childNode(n *indexNode, refs *[indexChildMax]uint32, i, count int) (indexNode, error) {
	off := refs[i] & nodeMask
	if x.preOrder {
		hi := n.hi
		for j := i + 1; j < count; j++ {
			if next := refs[j] & nodeMask; next != 0 {
				hi = next
				break
			}
		}
		return x.node(refs[i], off+1, hi)
	}
	lo := n.lo
	for j := i - 1; j >= 0; j-- {
		if prev := refs[j] & nodeMask; prev != 0 {
			lo = prev + 1
			break
		}
	}
	return x.node(refs[i], lo, off)
}

// child returns n's child for character c, ok false when there is none.
func (x *index) child(n *indexNode, refs *[indexChildMax]uint32, count int, c byte) (indexNode, bool, error) {
	if c < n.first || int(c-n.first) >= count {
		return indexNode{}, false, nil
	}
	i := int(c - n.first)
	if refs[i]&nodeMask == 0 {
		return indexNode{}, false, nil
	}
	child, err := x.childNode(n, refs, i, count)
	return child, err == nil, err
}

// eachValue calls fn with n's values in stored order (ascending priority, as depmod sorts them).
// fn gets a slice of the index data: it must copy what it keeps.
func (x *index) eachValue(n *indexNode, fn func(priority uint32, value []byte)) error {
	v := n.values
	for i := uint32(0); i < n.nvalues; i++ {
		if len(v) < 5 {
			return x.malformed(n.off, "value %d of %d cut short", i+1, n.nvalues)
		}
		priority := binary.BigEndian.Uint32(v)
		v = v[4:]
		end := 0
		for end < len(v) && v[end] != 0 {
			end++
		}
		if end == len(v) {
			return x.malformed(n.off, "value %d of %d runs past the end of the file", i+1, n.nvalues)
		}
		fn(priority, v[:end])
		v = v[end+1:]
	}
	return nil
}

// lookup is libkmod's index_mm_search: the first (lowest-priority) value stored under exactly
// key. modules.dep.bin maps a module name to "kernel/...ko: dep.ko ...".
func (x *index) lookup(key string) (value string, found bool, err error) {
	n, ok, err := x.rootNode()
	if !ok {
		return "", false, err
	}
	var refs [indexChildMax]uint32
	pos := 0
	for {
		if len(key)-pos < len(n.prefix) || key[pos:pos+len(n.prefix)] != string(n.prefix) {
			return "", false, nil
		}
		pos += len(n.prefix)
		if pos == len(key) {
			if n.nvalues == 0 {
				return "", false, nil
			}
			seen := false
			err := x.eachValue(&n, func(_ uint32, v []byte) {
				if !seen {
					value, seen = string(v), true
				}
			})
			if err != nil {
				return "", false, err
			}
			return value, true, nil
		}
		count, err := x.childRefs(&n, &refs)
		if err != nil {
			return "", false, err
		}
		child, ok, err := x.child(&n, &refs, count, key[pos])
		if !ok {
			return "", false, err
		}
		n, pos = child, pos+1
	}
}

// indexMatch is one value of a wildcard lookup and the key (a pattern) it is stored under.
type indexMatch struct {
	pattern  string
	value    string
	priority uint32
}

// isWildcard reports whether c starts the part of a pattern that fnmatch, not the trie, must
// match. libkmod stops the literal descent at '*', '?' and '['; '\' is added here because an
// escape makes the next character literal and so must go to Match too, which keeps the answers
// those of fnmatch on the whole pattern (no alias of a real kernel contains one).
func isWildcard(c byte) bool {
	return c == '*' || c == '?' || c == '[' || c == '\\'
}

// lookupWild is libkmod's index_mm_searchwild, for modules.alias.bin, whose keys are fnmatch
// patterns: every value whose pattern matches key, with that pattern, by ascending priority.
// The trie is descended along key while the patterns are literal; each subtree that starts
// with a wildcard is walked whole and its patterns matched against the rest of key.
//
// One difference from libkmod: where key itself holds '*', '?' or '[' (a real modalias does
// not), libkmod also descends that character's subtree literally and returns patterns that
// fnmatch would not match (a key "a[b]" finds the pattern "a[b]"); here only Match decides.
func (x *index) lookupWild(key string) ([]indexMatch, error) {
	n, ok, err := x.rootNode()
	if !ok {
		return nil, err
	}
	w := wildWalk{x: x, key: key}
	var refs [indexChildMax]uint32
	pos := 0
	for {
		for j, c := range n.prefix {
			if isWildcard(c) {
				// The rest of the prefix and everything below start with a wildcard.
				w.pattern = append(append(w.pattern[:0], key[:pos]...), n.prefix[:j]...)
				if err := w.all(n, j, pos+j); err != nil {
					return nil, err
				}
				return w.sorted(), nil
			}
			if pos+j >= len(key) || key[pos+j] != c {
				return w.sorted(), nil
			}
		}
		pos += len(n.prefix)
		count, err := x.childRefs(&n, &refs)
		if err != nil {
			return nil, err
		}
		for _, c := range [...]byte{'*', '?', '[', '\\'} {
			child, ok, err := x.child(&n, &refs, count, c)
			if err != nil {
				return nil, err
			}
			if ok {
				w.pattern = append(append(w.pattern[:0], key[:pos]...), c)
				if err := w.all(child, 0, pos); err != nil {
					return nil, err
				}
			}
		}
		if pos == len(key) {
			// A literal pattern equal to key.
			w.pattern = append(w.pattern[:0], key...)
			if err := w.values(&n); err != nil {
				return nil, err
			}
			return w.sorted(), nil
		}
		c := key[pos]
		if isWildcard(c) {
			return w.sorted(), nil
		}
		child, ok, err := x.child(&n, &refs, count, c)
		if !ok {
			if err != nil {
				return nil, err
			}
			return w.sorted(), nil
		}
		n, pos = child, pos+1
	}
}

// wildWalk is one wildcard lookup's state: the pattern assembled so far (key's literal part,
// then the characters of the subtree being walked) and the matches found.
type wildWalk struct {
	x       *index
	key     string
	pattern []byte
	matches []indexMatch
}

// all walks the whole subtree of n, whose pattern so far is w.pattern, n's prefix from j on
// still to append. keyPos is where the pattern's first wildcard is, in key and in w.pattern:
// before it both are the same literal characters, so only the rest needs matching. Each level
// of the recursion adds a character to the pattern, which maxIndexKey bounds.
func (w *wildWalk) all(n indexNode, j, keyPos int) error {
	mark := len(w.pattern)
	w.pattern = append(w.pattern, n.prefix[j:]...)
	if len(w.pattern) > maxIndexKey {
		return w.x.malformed(n.off, "a key longer than %d bytes", maxIndexKey)
	}
	var refs [indexChildMax]uint32
	count, err := w.x.childRefs(&n, &refs)
	if err != nil {
		return err
	}
	for i := 0; i < count; i++ {
		if refs[i]&nodeMask == 0 {
			continue
		}
		child, err := w.x.childNode(&n, &refs, i, count)
		if err != nil {
			return err
		}
		w.pattern = append(w.pattern, n.first+byte(i))
		if err := w.all(child, 0, keyPos); err != nil {
			return err
		}
		w.pattern = w.pattern[:len(w.pattern)-1]
	}
	if n.nvalues > 0 && match(w.pattern[keyPos:], w.key[keyPos:]) {
		if err := w.values(&n); err != nil {
			return err
		}
	}
	w.pattern = w.pattern[:mark]
	return nil
}

// values records n's values under the pattern w.pattern, copied out of the index data.
func (w *wildWalk) values(n *indexNode) error {
	if n.nvalues == 0 {
		return nil
	}
	pattern := string(w.pattern)
	return w.x.eachValue(n, func(priority uint32, v []byte) {
		w.matches = append(w.matches, indexMatch{pattern: pattern, value: string(v), priority: priority})
	})
}

// sorted returns the matches by ascending priority, as libkmod's result list holds them; ties
// keep the walk's order.
func (w *wildWalk) sorted() []indexMatch {
	sort.SliceStable(w.matches, func(i, j int) bool { return w.matches[i].priority < w.matches[j].priority })
	return w.matches
}

// each calls fn with every key and value of the index, keys in byte order, as libkmod's
// index_mm_dump lists them. fn's strings are copies.
func (x *index) each(fn func(key, value string, priority uint32)) error {
	n, ok, err := x.rootNode()
	if !ok {
		return err
	}
	var key []byte
	var walk func(n indexNode) error
	walk = func(n indexNode) error {
		mark := len(key)
		key = append(key, n.prefix...)
		if len(key) > maxIndexKey {
			return x.malformed(n.off, "a key longer than %d bytes", maxIndexKey)
		}
		if n.nvalues > 0 {
			k := string(key)
			if err := x.eachValue(&n, func(priority uint32, v []byte) { fn(k, string(v), priority) }); err != nil {
				return err
			}
		}
		var refs [indexChildMax]uint32
		count, err := x.childRefs(&n, &refs)
		if err != nil {
			return err
		}
		for i := 0; i < count; i++ {
			if refs[i]&nodeMask == 0 {
				continue
			}
			child, err := x.childNode(&n, &refs, i, count)
			if err != nil {
				return err
			}
			key = append(key, n.first+byte(i))
			if err := walk(child); err != nil {
				return err
			}
			key = key[:len(key)-1]
		}
		key = key[:mark]
		return nil
	}
	return walk(n)
}
