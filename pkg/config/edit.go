package config

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Edits change a config file's bytes through its YAML node tree, so that
// comments, key order and the file's indentation survive; the caller
// validates the result with Parse before writing it.

// AddRegion appends a region (with its nodes) to the file's regions.
func AddRegion(data []byte, r Region) ([]byte, error) {
	return edit(data, func(root *yaml.Node) error {
		regions := mapValue(root, "regions", yaml.SequenceNode)
		rn := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("name"), str(r.Name), str("cmek"), str(r.CMEK)}}
		if r.AuthPrincipal != "" {
			rn.Content = append(rn.Content, str("auth_principal"), str(r.AuthPrincipal))
		}
		nodes := &yaml.Node{Kind: yaml.SequenceNode}
		for _, n := range r.Nodes {
			nodes.Content = append(nodes.Content, nodeEntry(n))
		}
		rn.Content = append(rn.Content, str("nodes"), nodes)
		regions.Content = append(regions.Content, rn)
		return nil
	})
}

// AddNode appends a node to region's nodes; the region must be in the file.
// A node already there with the same keyring is left as it is.
func AddNode(data []byte, region string, n Node) ([]byte, error) {
	return edit(data, func(root *yaml.Node) error {
		regions := mapValue(root, "regions", yaml.SequenceNode)
		for _, rn := range regions.Content {
			if rn.Kind != yaml.MappingNode || lookup(rn, "name") == nil || lookup(rn, "name").Value != region {
				continue
			}
			nodes := mapValue(rn, "nodes", yaml.SequenceNode)
			for _, e := range nodes.Content {
				if k := lookup(e, "keyring"); k != nil && k.Value == n.Keyring {
					return nil
				}
			}
			nodes.Content = append(nodes.Content, nodeEntry(n))
			return nil
		}
		return fmt.Errorf("region %q is not in the file", region)
	})
}

// SetRegionCMEK sets region's cmek to uri and, when previous is not "",
// adds it to the region's previous_cmek (once), so that keyrings that still
// record it (their history, nodes not yet rotated) stay trusted.
func SetRegionCMEK(data []byte, region, uri, previous string) ([]byte, error) {
	return edit(data, func(root *yaml.Node) error {
		for _, rn := range mapValue(root, "regions", yaml.SequenceNode).Content {
			if rn.Kind != yaml.MappingNode || lookup(rn, "name") == nil || lookup(rn, "name").Value != region {
				continue
			}
			v := mapValue(rn, "cmek", yaml.ScalarNode)
			*v = yaml.Node{Kind: yaml.ScalarNode, Value: uri, LineComment: v.LineComment}
			if previous == "" {
				return nil
			}
			if lookup(rn, "previous_cmek") == nil { // next to cmek
				i := slices.IndexFunc(rn.Content, func(k *yaml.Node) bool { return k.Value == "cmek" })
				rn.Content = slices.Insert(rn.Content, i+2, str("previous_cmek"), &yaml.Node{Kind: yaml.SequenceNode})
			}
			prev := mapValue(rn, "previous_cmek", yaml.SequenceNode)
			if prev.Kind == yaml.ScalarNode { // one value: make it a list
				*prev = yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{str(prev.Value)}}
			}
			for _, e := range prev.Content {
				if e.Value == previous {
					return nil
				}
			}
			prev.Content = append(prev.Content, str(previous))
			return nil
		}
		return fmt.Errorf("region %q is not in the file", region)
	})
}

// Set sets a top-level key (cluster_id, plane, or a flag's default) to
// value, in place if the key is there, else at the end.
func Set(data []byte, key, value string) ([]byte, error) {
	return edit(data, func(root *yaml.Node) error {
		if key == "regions" {
			return fmt.Errorf("regions are edited with cmekctl region add and node add, not set")
		}
		if v := lookup(root, key); v != nil {
			*v = yaml.Node{Kind: yaml.ScalarNode, Value: value, LineComment: v.LineComment}
			return nil
		}
		root.Content = append(root.Content, str(key), str(value))
		return nil
	})
}

func edit(data []byte, fn func(root *yaml.Node) error) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: the file must be a mapping of keys to values", ErrInvalid)
	}
	if err := fn(root); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(indentOf(data))
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var indentRE = regexp.MustCompile(`(?m)^( +)\S`)

// indentOf is the file's indentation step: the smallest indentation of an
// indented line (2 if none; "  - x" under a key counts its spaces).
func indentOf(data []byte) int {
	n := 0
	for _, m := range indentRE.FindAllSubmatch(data, -1) {
		if l := len(m[1]); n == 0 || l < n {
			n = l
		}
	}
	if n < 2 {
		return 2
	}
	return n
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

func nodeEntry(n Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle, Content: []*yaml.Node{str("name"), str(n.Name), str("keyring"), str(n.Keyring)}}
}

// lookup is the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapValue is the value of key in m, added (of kind) if absent.
func mapValue(m *yaml.Node, key string, kind yaml.Kind) *yaml.Node {
	if v := lookup(m, key); v != nil {
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" || v.Kind == yaml.ScalarNode && strings.TrimSpace(v.Value) == "" {
			*v = yaml.Node{Kind: kind}
		}
		return v
	}
	v := &yaml.Node{Kind: kind}
	m.Content = append(m.Content, str(key), v)
	return v
}
