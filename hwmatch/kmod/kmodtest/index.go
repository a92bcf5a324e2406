// Package kmodtest writes kmod's binary indexes, as depmod does, for tests and benchmarks that
// need a modules.alias.bin or modules.dep.bin of their own.
package kmodtest

import (
	"encoding/binary"
	"path"
	"slices"
	"strings"
)

// trie is depmod's in-memory index (tools/depmod.c: index_insert, index_add_value) with a
// writer for both layouts of the file: pre-order (kmod >= 34, index_write) and post-order
// (earlier versions).
type trie struct {
	prefix   string
	children map[byte]*trie
	values   []value
}

type value struct {
	priority uint32
	value    string
}

// The file format (libkmod/libkmod-index.c): a big-endian header (magic, version, root
// offset), then nodes whose offsets carry what the node holds in their top bits.
const (
	indexMagic        = 0xB007F457
	indexVersionMajor = 2
	indexHeaderSize   = 12
	nodePrefix        = 0x80000000
	nodeValues        = 0x40000000
	nodeChildren      = 0x20000000
)

// Entry is one key of an index, with a value and its priority.
type Entry struct {
	Key, Value string
	Priority   uint32
}

// Index writes entries as a kmod index file (modules.alias.bin, modules.dep.bin): pre-order,
// the root first, as depmod writes it since kmod 34 (index_write), or post-order, the root last,
// as earlier versions did.
func Index(entries []Entry, preOrder bool) []byte {
	root := &trie{}
	for _, e := range entries {
		root.insert(e.Key, e.Value, e.Priority)
	}
	return root.write(preOrder)
}

func (n *trie) insert(key, v string, priority uint32) {
	i := 0
	for {
		for j := 0; j < len(n.prefix); j++ {
			if i+j >= len(key) || n.prefix[j] != key[i+j] {
				// Split: the node keeps prefix[:j], a new child at prefix[j] takes the rest.
				rest := &trie{prefix: n.prefix[j+1:], children: n.children, values: n.values}
				n.children, n.values = map[byte]*trie{n.prefix[j]: rest}, nil
				n.prefix = n.prefix[:j]
				break
			}
		}
		i += len(n.prefix)
		if i == len(key) {
			n.addValue(v, priority)
			return
		}
		c := key[i]
		child := n.children[c]
		if child == nil {
			if n.children == nil {
				n.children = map[byte]*trie{}
			}
			child = &trie{prefix: key[i+1:]}
			child.addValue(v, priority)
			n.children[c] = child
			return
		}
		n, i = child, i+1
	}
}

// addValue inserts before the first value of the same or a higher priority, as depmod does.
func (n *trie) addValue(v string, priority uint32) {
	k := 0
	for k < len(n.values) && n.values[k].priority < priority {
		k++
	}
	n.values = slices.Insert(n.values, k, value{priority, v})
}

func (n *trie) chars() []byte {
	var cs []byte
	for c := range n.children {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

func (n *trie) mask() uint32 {
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
func (n *trie) fields(refs map[byte]uint32) []byte {
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

func (n *trie) total() int {
	t := len(n.fields(nil))
	for _, c := range n.children {
		t += c.total()
	}
	return t
}

func (n *trie) write(preOrder bool) []byte {
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

func (n *trie) writePre(out []byte) []byte {
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

func (n *trie) writePost(out []byte) ([]byte, uint32) {
	refs := map[byte]uint32{}
	for _, c := range n.chars() {
		out, refs[c] = n.children[c].writePost(out)
	}
	off := uint32(len(out))
	return append(out, n.fields(refs)...), off | n.mask()
}

// AliasIndex is modules.alias.bin for the lines of a modules.alias file ("alias PATTERN
// MODULE"), as depmod writes it: '-' is '_' in a pattern outside brackets and in a module name
// (tools/depmod.c underscores), and a line's priority is its position.
func AliasIndex(modulesAlias []byte, preOrder bool) []byte {
	var entries []Entry
	for i, line := range strings.Split(string(modulesAlias), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		entries = append(entries, Entry{Key: underscores(f[1]), Value: strings.ReplaceAll(f[2], "-", "_"), Priority: uint32(i)})
	}
	return Index(entries, preOrder)
}

// DepIndex is modules.dep.bin for a modules.dep file ("path: deps"), keyed by module name.
func DepIndex(modulesDep []byte, preOrder bool) []byte {
	var entries []Entry
	for i, line := range strings.Split(string(modulesDep), "\n") {
		file, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name := path.Base(file)
		name, _, _ = strings.Cut(name, ".ko")
		entries = append(entries, Entry{Key: strings.ReplaceAll(name, "-", "_"), Value: line, Priority: uint32(i)})
	}
	return Index(entries, preOrder)
}

// underscores turns '-' into '_' outside [...] sets.
func underscores(s string) string {
	b := []byte(s)
	inSet := false
	for i, c := range b {
		switch {
		case c == '[':
			inSet = true
		case c == ']':
			inSet = false
		case c == '-' && !inSet:
			b[i] = '_'
		}
	}
	return string(b)
}
