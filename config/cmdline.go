package config

import (
	"errors"
	"fmt"
	"github.com/kairos-io/kairos-firmware/kcmdline"
	"io/fs"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The kernel command line sets keys in dot notation, as kairos-sdk's machine package reads it:
//
//	firmware.auto=false firmware.reprobe.mode=off
//	kairos.config=firmware.reprobe.attempts=5   (also the legacy cos.setup=KEY=VALUE)
//	firmware.extensions.0.name=linux-firmware-realtek   (numeric segments index lists)
//
// A token without '=' sets the value true. Values are typed by YAML rules, so
// firmware.stores=[/a,/b] is a list and firmware.reprobe.attempts=5 an integer. Plain tokens and
// the kairos.config family each build one tree; the kairos.config tree is merged over the other,
// as collector.ParseCmdLine does. Tokens that do not start with firmware are not ours.

// maxCmdlineIndex bounds a numeric segment, so that one token cannot allocate a huge list.
const maxCmdlineIndex = 255

// Kairos-owned command line prefixes (kairos-sdk machine.KairosOwnedPrefixes).
const (
	kairosConfigKey = "kairos.config"
	cosSetupKey     = "cos.setup"
)

// cmdlineToken is one parameter of the kernel command line.
type cmdlineToken = kcmdline.Token

// splitCmdline splits the command line at white space outside double quotes, as the kernel does.
func splitCmdline(s string) []cmdlineToken { return kcmdline.Split(s) }

// keyValue splits "KEY=VALUE" at the first '=' and drops surrounding double quotes from both,
// like kairos-sdk's strings.Trim(part, `"`). offset is the byte offset of s in the command line;
// the returned offsets are those of the key and value. hasValue is false without '='.
func keyValue(s string, offset int) (key string, keyOffset int, value string, valueOffset int, hasValue bool) {
	rawKey, rawValue, hasValue := strings.Cut(s, "=")
	key = strings.Trim(rawKey, `"`)
	keyOffset = offset + len(rawKey) - len(strings.TrimLeft(rawKey, `"`))
	if !hasValue {
		return key, keyOffset, "", offset, false
	}
	valueOffset = offset + len(rawKey) + 1
	value = strings.Trim(rawValue, `"`)
	valueOffset += len(rawValue) - len(strings.TrimLeft(rawValue, `"`))
	return key, keyOffset, value, valueOffset, true
}

// cmdlineSetting is one firmware key set on the command line.
type cmdlineSetting struct {
	token       cmdlineToken
	key         string
	keyOffset   int
	value       string
	valueOffset int
	hasValue    bool
	kairosOwned bool
}

// firmwareSetting returns the firmware setting a token makes, if any.
func firmwareSetting(tok cmdlineToken) (cmdlineSetting, bool) {
	key, keyOffset, value, valueOffset, hasValue := keyValue(tok.Text, tok.Offset)
	set := cmdlineSetting{token: tok, key: key, keyOffset: keyOffset, value: value, valueOffset: valueOffset, hasValue: hasValue}
	if key == kairosConfigKey || key == cosSetupKey {
		// cos.setup=URL without '=' is a config URL, not a setting.
		if !hasValue || (key == cosSetupKey && !strings.Contains(value, "=")) {
			return set, false
		}
		set.kairosOwned = true
		set.key, set.keyOffset, set.value, set.valueOffset, set.hasValue = keyValue(value, valueOffset)
	}
	return set, set.key == "firmware" || strings.HasPrefix(set.key, "firmware.")
}

// cmdlineBuilder turns the firmware tokens into two YAML trees, plain and kairos.config.
type cmdlineBuilder struct {
	origins map[*yaml.Node]origin
	plain   *yaml.Node
	owned   *yaml.Node
	errs    []Error
	found   bool
}

func (b *cmdlineBuilder) fail(set cmdlineSetting, column int, message string) {
	b.errs = append(b.errs, Error{
		File: CmdlinePath, Line: 1, Column: column + 1,
		Key: set.key, Value: set.value, Token: set.token.Text, Message: message,
	})
}

// node makes a node at a command line offset, owned by the token.
func (b *cmdlineBuilder) node(kind yaml.Kind, tag, value string, offset int, tok cmdlineToken) *yaml.Node {
	n := &yaml.Node{Kind: kind, Tag: tag, Value: value, Line: 1, Column: offset + 1}
	b.origins[n] = origin{file: CmdlinePath, token: tok.Text}
	return n
}

type segment struct {
	name   string
	offset int
}

func (b *cmdlineBuilder) add(set cmdlineSetting) {
	b.found = true
	// Checks of the key, in order.
	var segments []segment
	offset := set.keyOffset
	for _, name := range strings.Split(set.key, ".") {
		if name == "" {
			b.fail(set, offset, "empty key segment (two dots in a row, or a dot at the end)")
			return
		}
		if i, err := strconv.Atoi(name); err == nil && i > maxCmdlineIndex {
			b.fail(set, offset, fmt.Sprintf("list index %d larger than %d", i, maxCmdlineIndex))
			return
		}
		segments = append(segments, segment{name: name, offset: offset})
		offset += len(name) + 1
	}
	value, ok := b.value(set)
	if !ok {
		return
	}
	root := &b.plain
	if set.kairosOwned {
		root = &b.owned
	}
	*root = b.place(*root, segments, value, set.token)
}

// value parses the value of a setting as a YAML document; a token without '=' is true.
func (b *cmdlineBuilder) value(set cmdlineSetting) (*yaml.Node, bool) {
	if !set.hasValue {
		return b.node(yaml.ScalarNode, "!!bool", "true", set.token.Offset, set.token), true
	}
	var doc yaml.Node
	if err := parseYAML([]byte(set.value), &doc); err != nil {
		b.fail(set, set.valueOffset, "value is not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return b.node(yaml.ScalarNode, "!!null", "", set.valueOffset, set.token), true
	}
	// Place the value's nodes on the command line and give them to the token.
	seen := map[*yaml.Node]bool{}
	var visit func(n *yaml.Node)
	visit = func(n *yaml.Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		if n.Line == 1 {
			n.Column += set.valueOffset
		}
		n.Line = 1
		b.origins[n] = origin{file: CmdlinePath, token: set.token.Text}
		for _, c := range n.Content {
			visit(c)
		}
		if n.Alias != nil {
			visit(n.Alias)
		}
	}
	visit(doc.Content[0])
	return doc.Content[0], true
}

// place writes value at the segment path below n, creating mappings for names and lists for
// numeric segments (padded with nulls), and replacing what is in the way, as kairos-sdk's
// setDotIndexPath does. It returns the new n.
func (b *cmdlineBuilder) place(n *yaml.Node, segments []segment, value *yaml.Node, tok cmdlineToken) *yaml.Node {
	if len(segments) == 0 {
		return value
	}
	seg, rest := segments[0], segments[1:]
	if n != nil {
		n = resolveAlias(n)
	}
	if i, err := strconv.Atoi(seg.name); err == nil && i >= 0 {
		if n == nil || n.Kind != yaml.SequenceNode {
			n = b.node(yaml.SequenceNode, "!!seq", "", seg.offset, tok)
		}
		for len(n.Content) <= i {
			n.Content = append(n.Content, b.node(yaml.ScalarNode, "!!null", "", seg.offset, tok))
		}
		n.Content[i] = b.place(n.Content[i], rest, value, tok)
		return n
	}
	if n == nil || n.Kind != yaml.MappingNode {
		n = b.node(yaml.MappingNode, "!!map", "", seg.offset, tok)
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		if n.Content[k].Value == seg.name {
			n.Content[k+1] = b.place(n.Content[k+1], rest, value, tok)
			return n
		}
	}
	key := b.node(yaml.ScalarNode, "!!str", seg.name, seg.offset, tok)
	n.Content = append(n.Content, key, b.place(nil, rest, value, tok))
	return n
}

// readCmdline adds the firmware settings of /proc/cmdline. A missing file (a fixture tree
// without /proc) is not an error.
func (l *loader) readCmdline() {
	data, err := l.root.FS.ReadFile(CmdlinePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		l.errs = append(l.errs, Error{File: CmdlinePath, Message: "cannot read: " + describe(err)})
		l.sources = append(l.sources, Source{Path: CmdlinePath, Skipped: "cannot read"})
		return
	}
	b := &cmdlineBuilder{origins: l.origins}
	for _, tok := range splitCmdline(string(data)) {
		if set, ok := firmwareSetting(tok); ok {
			b.add(set)
		}
	}
	l.sources = append(l.sources, Source{Path: CmdlinePath, Firmware: b.found})
	if len(b.errs) > 0 {
		l.errs = append(l.errs, b.errs...)
		return
	}
	for _, root := range []*yaml.Node{b.plain, b.owned} {
		if root == nil {
			continue
		}
		// The first segment of every setting is "firmware", so the root is a mapping with
		// that one key.
		l.addBlock(CmdlinePath, root.Content[1])
	}
}
