// Package config reads cmekctl's cluster config file: the cluster ID, its
// regions with their CMEK URIs (and, for the Cloud, auth principals), the
// nodes of each region with their keyring paths, and default values for
// command-line flags. It is validated fully before any command acts, and
// every error names the file and line.
//
// Example:
//
//	cluster_id: c1
//	plane: standalone            # or cloud
//	regions:
//	  - name: us-east1
//	    cmek: aws-kms:///arn:aws:kms:us-east-1:111122223333:key/...?REGION=us-east-1&AUTH=implicit
//	    auth_principal: arn:aws:iam::111122223333:role/crdb-cmek
//	    nodes:
//	      - {name: n1, keyring: /var/lib/cockroach/n1/cmek}
//	output: json                 # any flag name: a default for that flag
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Planes.
const (
	PlaneStandalone = "standalone"
	PlaneCloud      = "cloud"
)

// Config is a cluster config file.
type Config struct {
	Path      string
	ClusterID string
	Plane     string
	Regions   []Region
	// Flags are default values for command-line flags, by flag name.
	Flags map[string]FlagValue
}

// FlagValue is a flag default from the file, with its line.
type FlagValue struct {
	Values []string
	Line   int
}

// Region is one region of the cluster.
type Region struct {
	Name string
	CMEK string
	// PreviousCMEK are keys the region's keyrings may still record (in
	// their history, or nodes not yet rotated): with CMEK, the only keys a
	// keyring of the region may name (keyring trust, docs/threat-model.md).
	PreviousCMEK  []string
	AuthPrincipal string
	Nodes         []Node
	Line          int
}

// Node is one node and its keyring directory.
type Node struct {
	Name    string
	Keyring string
	Line    int
}

// ErrInvalid wraps every validation error.
var ErrInvalid = errors.New("invalid config")

// DefaultPath is $XDG_CONFIG_HOME/cmekctl/config.yaml, or
// ~/.config/cmekctl/config.yaml.
func DefaultPath(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "cmekctl", "config.yaml")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "cmekctl", "config.yaml")
	}
	return ""
}

// Load reads and validates path. knownFlag reports whether a top-level key
// that is not a cluster field is the name of some flag.
func Load(path string, knownFlag func(string) bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, knownFlag)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func errAt(path string, line int, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrInvalid, path, line, fmt.Sprintf(format, args...))
}

// Parse validates a config file's bytes.
func Parse(path string, data []byte, knownFlag func(string) bool) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, errEOF) || strings.Contains(err.Error(), "EOF") {
			return &Config{Path: path, Flags: map[string]FlagValue{}}, nil
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	c := &Config{Path: path, Flags: map[string]FlagValue{}}
	if len(doc.Content) == 0 {
		return c, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errAt(path, root.Line, "the file must be a mapping of keys to values")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if prev, dup := seen[k.Value]; dup {
			return nil, errAt(path, k.Line, "%q is set twice (first on line %d)", k.Value, prev)
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "cluster_id", "cluster-id":
			if err := scalar(path, v, &c.ClusterID); err != nil {
				return nil, err
			}
		case "plane":
			if err := scalar(path, v, &c.Plane); err != nil {
				return nil, err
			}
			if c.Plane != PlaneStandalone && c.Plane != PlaneCloud {
				return nil, errAt(path, v.Line, "plane %q: use standalone or cloud", c.Plane)
			}
		case "regions":
			rs, err := parseRegions(path, v)
			if err != nil {
				return nil, err
			}
			c.Regions = rs
		default:
			if knownFlag == nil || !knownFlag(k.Value) {
				return nil, errAt(path, k.Line, "unknown field %q (cluster fields: cluster_id, plane, regions; or a flag name such as output)", k.Value)
			}
			vals, err := scalars(path, k.Value, v)
			if err != nil {
				return nil, err
			}
			c.Flags[k.Value] = FlagValue{Values: vals, Line: k.Line}
		}
	}
	if c.Plane == "" {
		c.Plane = PlaneStandalone
	}
	return c, c.validate()
}

var errEOF = errors.New("EOF")

func scalar(path string, v *yaml.Node, out *string) error {
	if v.Kind != yaml.ScalarNode {
		return errAt(path, v.Line, "a single value is expected")
	}
	*out = v.Value
	return nil
}

// scalars is key's value: a list of plain values, or one value.
func scalars(path, key string, v *yaml.Node) ([]string, error) {
	if v.Kind == yaml.ScalarNode {
		return []string{v.Value}, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, errAt(path, v.Line, "%q: a value or a list of values is expected", key)
	}
	var out []string
	for _, x := range v.Content {
		if x.Kind != yaml.ScalarNode {
			return nil, errAt(path, x.Line, "%q: a list of plain values is expected", key)
		}
		out = append(out, x.Value)
	}
	return out, nil
}

func parseRegions(path string, v *yaml.Node) ([]Region, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, errAt(path, v.Line, "regions: a list is expected")
	}
	var out []Region
	for _, rn := range v.Content {
		if rn.Kind != yaml.MappingNode {
			return nil, errAt(path, rn.Line, "a region must be a mapping with name, cmek and nodes")
		}
		r := Region{Line: rn.Line}
		for i := 0; i+1 < len(rn.Content); i += 2 {
			k, x := rn.Content[i], rn.Content[i+1]
			var err error
			switch k.Value {
			case "name":
				err = scalar(path, x, &r.Name)
			case "cmek":
				err = scalar(path, x, &r.CMEK)
			case "previous_cmek":
				r.PreviousCMEK, err = scalars(path, k.Value, x)
			case "auth_principal":
				err = scalar(path, x, &r.AuthPrincipal)
			case "nodes":
				r.Nodes, err = parseNodes(path, x)
			default:
				err = errAt(path, k.Line, "unknown region field %q (fields: name, cmek, previous_cmek, auth_principal, nodes)", k.Value)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func parseNodes(path string, v *yaml.Node) ([]Node, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, errAt(path, v.Line, "nodes: a list is expected")
	}
	var out []Node
	for _, nn := range v.Content {
		if nn.Kind != yaml.MappingNode {
			return nil, errAt(path, nn.Line, "a node must be a mapping with name and keyring")
		}
		n := Node{Line: nn.Line}
		for i := 0; i+1 < len(nn.Content); i += 2 {
			k, x := nn.Content[i], nn.Content[i+1]
			var err error
			switch k.Value {
			case "name":
				err = scalar(path, x, &n.Name)
			case "keyring":
				err = scalar(path, x, &n.Keyring)
			default:
				err = errAt(path, k.Line, "unknown node field %q (fields: name, keyring)", k.Value)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, n)
	}
	return out, nil
}

func (c *Config) validate() error {
	if len(c.Regions) > 0 && c.ClusterID == "" {
		return errAt(c.Path, 1, "cluster_id is required when regions are given")
	}
	regions := map[string]int{}
	nodes := map[string]string{}
	nodeLine := map[string]int{}
	keyrings := map[string]int{}
	for _, r := range c.Regions {
		if !nameRE.MatchString(r.Name) {
			return errAt(c.Path, r.Line, "region name %q: use letters, digits, '.', '_' and '-'", r.Name)
		}
		if l, dup := regions[r.Name]; dup {
			return errAt(c.Path, r.Line, "region %q is listed twice (first on line %d)", r.Name, l)
		}
		regions[r.Name] = r.Line
		if r.CMEK == "" && c.Plane != PlaneCloud {
			return errAt(c.Path, r.Line, "region %q has no cmek URI", r.Name)
		}
		for _, n := range r.Nodes {
			if !nameRE.MatchString(n.Name) {
				return errAt(c.Path, n.Line, "node name %q: use letters, digits, '.', '_' and '-'", n.Name)
			}
			if other, dup := nodes[n.Name]; dup {
				if other == r.Name {
					return errAt(c.Path, n.Line, "node %q is listed twice in region %q (first on line %d)", n.Name, r.Name, nodeLine[n.Name])
				}
				return errAt(c.Path, n.Line, "node %q is in two regions, %q (line %d) and %q", n.Name, other, nodeLine[n.Name], r.Name)
			}
			nodes[n.Name], nodeLine[n.Name] = r.Name, n.Line
			if n.Keyring == "" || !filepath.IsAbs(n.Keyring) {
				return errAt(c.Path, n.Line, "node %q: keyring must be an absolute path", n.Name)
			}
			if l, dup := keyrings[filepath.Clean(n.Keyring)]; dup {
				return errAt(c.Path, n.Line, "node %q: keyring %s is also used on line %d", n.Name, n.Keyring, l)
			}
			keyrings[filepath.Clean(n.Keyring)] = n.Line
		}
	}
	return nil
}

// Region returns the region named name.
func (c *Config) Region(name string) (*Region, bool) {
	for i := range c.Regions {
		if c.Regions[i].Name == name {
			return &c.Regions[i], true
		}
	}
	return nil, false
}

// Select returns the nodes of the regions and nodes named (all when empty),
// with their region, or an error naming what does not exist.
func (c *Config) Select(regions, nodes []string) ([]Region, error) {
	for _, r := range regions {
		if _, ok := c.Region(r); !ok {
			return nil, fmt.Errorf("region %q is not in %s", r, c.Path)
		}
	}
	found := map[string]bool{}
	var out []Region
	for _, r := range c.Regions {
		if len(regions) > 0 && !slices.Contains(regions, r.Name) {
			continue
		}
		sel := r
		sel.Nodes = nil
		for _, n := range r.Nodes {
			if len(nodes) == 0 || slices.Contains(nodes, n.Name) {
				sel.Nodes = append(sel.Nodes, n)
				found[n.Name] = true
			}
		}
		if len(sel.Nodes) > 0 || len(nodes) == 0 {
			out = append(out, sel)
		}
	}
	for _, n := range nodes {
		if !found[n] {
			return nil, fmt.Errorf("node %q is not in the regions selected from %s", n, c.Path)
		}
	}
	return out, nil
}
