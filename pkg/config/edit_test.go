package config

import (
	"strings"
	"testing"
)

const commented = `# the production cluster
cluster_id: c1   # never change
regions:
  # the first region
  - name: east
    cmek: file-kms:///k/east
    nodes:
      - {name: n1, keyring: /k/n1}  # rack 4
output: json
`

// TestEditKeepsCommentsAndIndent: region add, node add and set keep the
// comments and the file's two-space indentation (yaml.Marshal alone
// re-indents to four and was what region add used).
func TestEditKeepsCommentsAndIndent(t *testing.T) {
	out, err := AddRegion([]byte(commented), Region{Name: "west", CMEK: "file-kms:///k/west", Nodes: []Node{{Name: "w1", Keyring: "/k/w1"}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err = AddNode(out, "east", Node{Name: "n2", Keyring: "/k/n2"})
	if err != nil {
		t.Fatal(err)
	}
	out, err = Set(out, "output", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"# the production cluster", "cluster_id: c1 # never change", "  # the first region\n  - name: east\n    cmek:",
		"      - {name: n1, keyring: /k/n1} # rack 4\n      - {name: n2, keyring: /k/n2}\n", "  - name: west\n", "output: yaml\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("edited file lacks %q:\n%s", want, s)
		}
	}
	c, err := Parse("x.yaml", out, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Regions) != 2 || len(c.Regions[0].Nodes) != 2 || c.Flags["output"].Values[0] != "yaml" {
		t.Errorf("parsed back: %+v", c)
	}
	// A node already there is not added twice; an unknown region is refused.
	again, _ := AddNode(out, "east", Node{Name: "n2", Keyring: "/k/n2"})
	if strings.Count(string(again), "/k/n2") != 1 {
		t.Errorf("node added twice:\n%s", again)
	}
	if _, err := AddNode(out, "north", Node{Name: "x", Keyring: "/k/x"}); err == nil {
		t.Error("AddNode to a region not in the file succeeded")
	}
	// An empty file gets its first key.
	if out, err := Set(nil, "cluster_id", "c9"); err != nil || string(out) != "cluster_id: c9\n" {
		t.Errorf("Set on an empty file: %q, %v", out, err)
	}
}
