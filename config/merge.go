package config

import "gopkg.in/yaml.v3"

// mergeNodes merges the firmware block of a later source (b) over the merged earlier ones (a),
// following kairos-sdk collector.DeepMerge (collector/collector.go):
//
//   - a absent or null: b.
//   - b absent: a.
//   - b null: Kairos resets the value to the empty/zero value of a's type. An empty mapping or
//     list means "nothing set" here, and the zero value of a scalar (false, 0, "") is not a valid
//     setting for most keys, so null means "unset, use the default" for every kind.
//   - mappings: merged key by key, recursively; keys only in b are added.
//   - lists whose first item (in a) is a mapping, like extensions and when: concatenated.
//   - other lists, like stores and exclude: b's items that a lacks are appended (a union that
//     keeps a's order).
//   - scalars: b.
//
// The result reuses the leaf nodes of a and b, so their origins stay known. New container nodes
// take the position (and origin) of b's container. Sources are validated before they are merged,
// so a and b always hold the same kind at the same key; were they to differ, b wins (where
// Kairos reports "cannot merge").
func mergeNodes(a, b *yaml.Node, origins map[*yaml.Node]origin) *yaml.Node {
	if a != nil {
		a = resolveAlias(a)
	}
	if b != nil {
		b = resolveAlias(b)
	}
	switch {
	case a == nil || isNull(a):
		return b
	case b == nil:
		return a
	case isNull(b):
		return b
	case a.Kind != b.Kind:
		return b
	}
	switch a.Kind {
	case yaml.MappingNode:
		out := containerLike(b, origins)
		out.Content = append(out.Content, a.Content...)
		for i := 0; i+1 < len(b.Content); i += 2 {
			key, value := b.Content[i], b.Content[i+1]
			if at := mappingIndex(out, key.Value); at >= 0 {
				out.Content[at+1] = mergeNodes(out.Content[at+1], value, origins)
				continue
			}
			out.Content = append(out.Content, key, value)
		}
		return out
	case yaml.SequenceNode:
		out := containerLike(b, origins)
		out.Content = append(out.Content, a.Content...)
		if len(a.Content) > 0 && resolveAlias(a.Content[0]).Kind == yaml.MappingNode {
			out.Content = append(out.Content, b.Content...)
			return out
		}
		have := map[string]bool{}
		for _, item := range out.Content {
			have[resolveAlias(item).Value] = true
		}
		for _, item := range b.Content {
			if value := resolveAlias(item).Value; !have[value] {
				have[value] = true
				out.Content = append(out.Content, item)
			}
		}
		return out
	default:
		return b
	}
}

// containerLike returns an empty container of b's kind at b's position, with b's origin.
func containerLike(b *yaml.Node, origins map[*yaml.Node]origin) *yaml.Node {
	out := &yaml.Node{Kind: b.Kind, Tag: b.Tag, Line: b.Line, Column: b.Column}
	if o, ok := origins[b]; ok {
		origins[out] = o
	}
	return out
}

func mappingIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if resolveAlias(m.Content[i]).Value == key {
			return i
		}
	}
	return -1
}

// resolveAlias follows YAML aliases to the anchored node.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for hops := 0; n.Kind == yaml.AliasNode && n.Alias != nil && hops < maxNodes; hops++ {
		n = n.Alias
	}
	return n
}
