package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// The firmware block is decoded by walking yaml.Node trees rather than with yaml.Unmarshal into
// a struct: only the walk knows the line and column of every key and value, can report an
// unknown key together with its neighbours' errors, and can tell null ("use the default") from
// an absent key. Each source is walked on its own (sourceMode) to collect its errors; the merged
// tree of the error-free sources is walked once more (mergedMode) to build the Config and to
// check what only shows across sources.

// maxNodes bounds the nodes visited under one firmware block, so that a small file of nested
// YAML aliases (a "billion laughs") cannot make the walk explode.
const maxNodes = 100000

// Keys of each mapping, in the order the documentation lists them.
var (
	firmwareKeys = []string{"auto", "signatures", "certificates", "stores", "extensions", "reprobe", "install"}
	ruleKeys     = []string{"name", "when"}
	matchKeys    = []string{"usb", "pci", "class", "modalias", "driver", "dmi"}
	reprobeKeys  = []string{"mode", "exclude", "force", "attempts", "timeout"}
)

// origin is where a node was written.
type origin struct {
	file  string
	token string // the kernel command line token, for nodes built from /proc/cmdline
	key   string // the key path inside its own source
}

type decodeMode int

const (
	sourceMode decodeMode = iota
	mergedMode
)

// decoder walks one firmware block into a Config and collects the errors.
type decoder struct {
	mode decodeMode
	// file names the source in sourceMode.
	file string
	// origins records where each node was written. sourceMode fills it, mergedMode reads it so
	// that errors found in the merged tree point into the source that wrote the value.
	origins    map[*yaml.Node]origin
	visited    int
	overBudget bool
	errs       []Error
}

func newDecoder(mode decodeMode, file string, origins map[*yaml.Node]origin) *decoder {
	return &decoder{mode: mode, file: file, origins: origins}
}

// decode walks the value of the top-level firmware key into a copy of the defaults.
func (d *decoder) decode(n *yaml.Node) *Config {
	c := Defaults()
	d.firmware(n, "firmware", c)
	return c
}

// node resolves aliases, counts the visit, and records the node's origin. It returns nil once
// the walk is over budget.
func (d *decoder) node(n *yaml.Node, key string) *yaml.Node {
	n = resolveAlias(n)
	d.visited++
	if d.visited > maxNodes {
		if !d.overBudget {
			d.overBudget = true
			d.fail(n, key, "", fmt.Sprintf("more than %d YAML nodes under firmware (nested aliases?)", maxNodes))
		}
		return nil
	}
	if d.mode == sourceMode {
		o := d.origins[n]
		if o.file == "" {
			o.file = d.file
		}
		if o.key == "" {
			o.key = key
		}
		d.origins[n] = o
	}
	return n
}

// fail records an error at node n. In mergedMode the file and key come from the source that
// wrote n.
func (d *decoder) fail(n *yaml.Node, key, value, message string) {
	o := d.origins[n]
	if o.file == "" {
		o.file = d.file
	}
	if d.mode == mergedMode && o.key != "" {
		key = o.key
	}
	d.errs = append(d.errs, Error{
		File: o.file, Line: n.Line, Column: n.Column,
		Key: key, Value: value, Token: o.token, Message: message,
	})
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names what a node holds, for "expected X, got Y" messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!str":
			return "a string"
		default:
			return "a " + strings.TrimPrefix(n.ShortTag(), "!!") + " value"
		}
	}
	return "something else"
}

// scalarValue is the text of a scalar, used as the error value; empty for containers.
func scalarValue(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

// mapping walks a mapping node: it refuses other kinds, keys that are not strings, merge keys,
// duplicate keys and unknown keys, and calls field for every known key in document order.
// It reports false when n is null (the caller keeps the defaults) or not a mapping.
func (d *decoder) mapping(n *yaml.Node, key string, known []string, field func(name, key string, v *yaml.Node)) bool {
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, key, scalarValue(n), "expected a mapping, got "+kindName(n))
		return false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.node(n.Content[i], key)
		if k == nil {
			return true
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, key, "", "key is not a string but "+kindName(k))
			continue
		}
		name := k.Value
		childKey := key + "." + name
		if k.ShortTag() == "!!merge" {
			d.fail(k, key, name, "YAML merge keys (<<) are not supported under firmware; write the keys out")
			continue
		}
		if first, ok := seen[name]; ok {
			d.fail(k, childKey, name, fmt.Sprintf("key appears twice; first at line %d, column %d", first.Line, first.Column))
			continue
		}
		seen[name] = k
		if !contains(known, name) {
			d.fail(k, childKey, name, "unknown key; want one of "+strings.Join(known, ", "))
			continue
		}
		v := d.node(n.Content[i+1], childKey)
		if v == nil {
			return true
		}
		field(name, childKey, v)
	}
	return true
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// str returns the text of a scalar. Any scalar is taken as written (`class: 0280` is the
// string "0280", not the number 280); null and containers are refused.
func (d *decoder) str(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, key, scalarValue(n), "expected a string, got "+kindName(n))
		return "", false
	}
	return n.Value, true
}

// checked runs a string check and reports its message.
func checked[T any](d *decoder, n *yaml.Node, key string, check func(string) (T, string)) (T, bool) {
	var zero T
	s, ok := d.str(n, key)
	if !ok {
		return zero, false
	}
	v, msg := check(s)
	if msg != "" {
		d.fail(n, key, s, msg)
		return zero, false
	}
	return v, true
}

func (d *decoder) boolean(n *yaml.Node, key string) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		d.fail(n, key, scalarValue(n), "expected a boolean (true or false), got "+kindName(n))
		return false, false
	}
	return b, true
}

func (d *decoder) integer(n *yaml.Node, key string) (int, bool) {
	var i int
	if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
		d.fail(n, key, scalarValue(n), "expected an integer, got "+kindName(n))
		return 0, false
	}
	return i, true
}

// sequence returns the items of a list; null is an absent list.
func (d *decoder) sequence(n *yaml.Node, key string) ([]*yaml.Node, bool) {
	if isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, scalarValue(n), "expected a list, got "+kindName(n))
		return nil, false
	}
	return n.Content, true
}

func (d *decoder) firmware(n *yaml.Node, key string, c *Config) {
	d.mapping(n, key, firmwareKeys, func(name, key string, v *yaml.Node) {
		if isNull(v) {
			return // null keeps the default, as an absent key
		}
		switch name {
		case "auto":
			if b, ok := d.boolean(v, key); ok {
				c.Auto = b
			}
		case "signatures":
			if s, ok := checked(d, v, key, checkSignatures); ok {
				c.Signatures = s
			}
		case "certificates":
			c.Certificates = d.stringList(v, key, checkStore)
		case "stores":
			c.Stores = d.stringList(v, key, checkStore)
		case "extensions":
			c.Extensions = d.extensions(v, key)
		case "reprobe":
			d.reprobe(v, key, &c.Reprobe)
		case "install":
			c.Install = d.stringList(v, key, checkInstallURI)
		}
	})
}

func checkSignatures(s string) (SignaturePolicy, string) {
	switch p := SignaturePolicy(s); p {
	case SignaturesAuto, SignaturesRequired, SignaturesIgnore:
		return p, ""
	}
	return "", "unknown signature policy; want auto, required or ignore"
}

func checkMode(s string) (ReprobeMode, string) {
	switch m := ReprobeMode(s); m {
	case ReprobeFailed, ReprobeMatched, ReprobeOff:
		return m, ""
	}
	return "", "unknown mode; want failed, matched or off"
}

// stringList decodes a list of checked strings. In sourceMode an entry written twice is an
// error; across sources lists are united (see merge.go), so mergedMode never sees one.
func (d *decoder) stringList(n *yaml.Node, key string, check func(string) (string, string)) []string {
	out := []string{}
	items, ok := d.sequence(n, key)
	if !ok {
		return out
	}
	seen := map[string]*yaml.Node{}
	for i, item := range items {
		itemKey := fmt.Sprintf("%s[%d]", key, i)
		if item = d.node(item, itemKey); item == nil {
			return out
		}
		v, ok := checked(d, item, itemKey, check)
		if !ok {
			continue
		}
		if first, dup := seen[v]; dup && d.mode == sourceMode {
			d.fail(item, itemKey, v, fmt.Sprintf("listed twice; first at line %d, column %d", first.Line, first.Column))
			continue
		}
		seen[v] = item
		out = append(out, v)
	}
	return out
}

func (d *decoder) extensions(n *yaml.Node, key string) []Extension {
	out := []Extension{}
	items, ok := d.sequence(n, key)
	if !ok {
		return out
	}
	names := map[string]*yaml.Node{}
	for i, item := range items {
		ruleKey := fmt.Sprintf("%s[%d]", key, i)
		if item = d.node(item, ruleKey); item == nil {
			return out
		}
		rule, nameNode, ok := d.rule(item, ruleKey)
		if !ok {
			continue
		}
		// Within one source a repeated name is a mistake (two rules that were meant to be one).
		// Across sources rules accumulate the way Kairos concatenates lists of mappings.
		if first, dup := names[rule.Name]; dup && d.mode == sourceMode {
			d.fail(nameNode, ruleKey+".name", rule.Name,
				fmt.Sprintf("rule name already used at line %d, column %d; put all matchers in one when list", first.Line, first.Column))
			continue
		}
		names[rule.Name] = nameNode
		out = append(out, rule)
	}
	return out
}

// rule decodes one extensions entry. It returns the name node for duplicate reports.
func (d *decoder) rule(n *yaml.Node, key string) (Extension, *yaml.Node, bool) {
	var rule Extension
	var nameNode *yaml.Node
	errsBefore := len(d.errs)
	isMapping := d.mapping(n, key, ruleKeys, func(name, key string, v *yaml.Node) {
		switch name {
		case "name":
			nameNode = v
			if isNull(v) {
				d.fail(v, key, "", "empty image name")
				return
			}
			if s, ok := checked(d, v, key, checkImageName); ok {
				rule.Name = s
			}
		case "when":
			rule.When = d.when(v, key)
		}
	})
	switch {
	case isNull(n):
		d.fail(n, key, "", "empty rule; want a mapping with name and, optionally, when")
		return rule, nil, false
	case !isMapping:
		return rule, nil, false
	case nameNode == nil:
		d.fail(n, key+".name", "", "missing; every rule names an image")
		return rule, nil, false
	}
	return rule, nameNode, len(d.errs) == errsBefore
}

func (d *decoder) when(n *yaml.Node, key string) []Match {
	items, ok := d.sequence(n, key)
	if !ok {
		return nil // absent or null: always
	}
	if len(items) == 0 {
		d.fail(n, key, "", "empty list would never match; leave when out to select the image always")
		return nil
	}
	var out []Match
	for i, item := range items {
		matchKey := fmt.Sprintf("%s[%d]", key, i)
		if item = d.node(item, matchKey); item == nil {
			return out
		}
		if m, ok := d.match(item, matchKey); ok {
			out = append(out, m)
		}
	}
	return out
}

// match decodes one `when` entry. Null fields count as absent.
func (d *decoder) match(n *yaml.Node, key string) (Match, bool) {
	var m Match
	var classNode *yaml.Node
	errsBefore := len(d.errs)
	isMapping := d.mapping(n, key, matchKeys, func(name, key string, v *yaml.Node) {
		if isNull(v) {
			return
		}
		switch name {
		case "usb":
			m.USB, _ = checked(d, v, key, checkIDPattern)
		case "pci":
			m.PCI, _ = checked(d, v, key, checkIDPattern)
		case "class":
			classNode = v
			m.Class, _ = checked(d, v, key, checkClass)
		case "modalias":
			m.Modalias, _ = checked(d, v, key, checkGlob)
		case "driver":
			m.Driver, _ = checked(d, v, key, checkDriver)
		case "dmi":
			m.DMI = d.dmi(v, key)
		}
	})
	if isNull(n) {
		d.fail(n, key, "", "empty matcher; give usb, pci, modalias, driver or dmi")
		return m, false
	}
	if !isMapping || len(d.errs) != errsBefore {
		return m, false
	}
	// Checks across the fields of one entry, in this order.
	switch {
	case m.USB == nil && m.PCI == nil && m.Class == "" && m.Modalias == "" && m.Driver == "" && m.DMI == nil:
		d.fail(n, key, "", "empty matcher; give usb, pci, modalias, driver or dmi")
	case m.Class != "" && m.PCI == nil:
		d.fail(classNode, key+".class", classNode.Value, `class needs pci in the same entry; use pci: "*:*" for any PCI device`)
	case m.USB != nil && m.PCI != nil:
		d.fail(n, key, "", "usb and pci in one entry never match the same device; write two entries")
	default:
		return m, true
	}
	return m, false
}

func (d *decoder) dmi(n *yaml.Node, key string) map[string]string {
	out := map[string]string{}
	isMapping := d.mapping(n, key, dmiFields, func(name, key string, v *yaml.Node) {
		if s, ok := checked(d, v, key, checkGlob); ok {
			out[name] = s
		}
	})
	if isMapping && len(n.Content) == 0 {
		d.fail(n, key, "", "empty dmi matcher; give fields like sys_vendor or product_name")
	}
	return out
}

func (d *decoder) reprobe(n *yaml.Node, key string, r *Reprobe) {
	excluded := map[string]*yaml.Node{}
	var forced []*yaml.Node
	d.mapping(n, key, reprobeKeys, func(name, key string, v *yaml.Node) {
		if isNull(v) {
			return
		}
		switch name {
		case "mode":
			if m, ok := checked(d, v, key, checkMode); ok {
				r.Mode = m
			}
		case "exclude":
			r.Exclude = d.stringList(v, key, checkDeviceName)
			for _, item := range v.Content {
				excluded[resolveAlias(item).Value] = resolveAlias(item)
			}
		case "force":
			r.Force = d.stringList(v, key, checkDeviceName)
			forced = v.Content
		case "attempts":
			i, ok := d.integer(v, key)
			switch {
			case !ok:
			case i < MinAttempts || i > MaxAttempts:
				d.fail(v, key, v.Value, fmt.Sprintf("attempts must be %d..%d", MinAttempts, MaxAttempts))
			default:
				r.Attempts = i
			}
		case "timeout":
			if t, ok := checked(d, v, key, checkTimeout); ok {
				r.Timeout = t
			}
		}
	})
	// A device both excluded and forced is a contradiction. The check runs on the merged tree,
	// where both lists are complete, and names the source of the force entry.
	if d.mode != mergedMode {
		return
	}
	for i, item := range forced {
		item = resolveAlias(item)
		if ex, ok := excluded[item.Value]; ok {
			o := d.origins[ex]
			d.fail(item, fmt.Sprintf("%s.force[%d]", key, i), item.Value,
				fmt.Sprintf("device is also in reprobe.exclude (%s:%d:%d); list it in one of the two", o.file, ex.Line, ex.Column))
		}
	}
}
