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

// TestSetRegionCMEK: rotate cmek's edit sets the region's key and keeps the
// old one in previous_cmek (next to cmek, once), comments kept.
func TestSetRegionCMEK(t *testing.T) {
	out, err := SetRegionCMEK([]byte(commented), "east", "file-kms:///k/east2", "file-kms:///k/east")
	if err != nil {
		t.Fatal(err)
	}
	out, err = SetRegionCMEK(out, "east", "file-kms:///k/east3", "file-kms:///k/east2")
	if err != nil {
		t.Fatal(err)
	}
	again, err := SetRegionCMEK(out, "east", "file-kms:///k/east3", "file-kms:///k/east2")
	if err != nil || string(again) != string(out) {
		t.Errorf("a second identical edit changed the file (%v):\n%s", err, again)
	}
	s := string(out)
	want := "    cmek: file-kms:///k/east3\n    previous_cmek:\n      - file-kms:///k/east\n      - file-kms:///k/east2\n    nodes:\n"
	if !strings.Contains(s, want) || !strings.Contains(s, "# the first region") || !strings.Contains(s, "# rack 4") {
		t.Errorf("edited file lacks %q or a comment:\n%s", want, s)
	}
	c, err := Parse("x.yaml", out, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Regions[0]; r.CMEK != "file-kms:///k/east3" || len(r.PreviousCMEK) != 2 {
		t.Errorf("parsed back: %+v", r)
	}
	if _, err := SetRegionCMEK(out, "north", "file-kms:///k/n", ""); err == nil {
		t.Error("SetRegionCMEK of a region not in the file succeeded")
	}
	// One value (not a list) is read, and kept as the list's first entry.
	one := strings.Replace(commented, "    nodes:", "    previous_cmek: file-kms:///k/east0\n    nodes:", 1)
	if c, err := Parse("x.yaml", []byte(one), func(string) bool { return true }); err != nil || len(c.Regions[0].PreviousCMEK) != 1 {
		t.Fatalf("previous_cmek as one value: %v", err)
	}
	out, err = SetRegionCMEK([]byte(one), "east", "file-kms:///k/east2", "file-kms:///k/east")
	if err != nil || !strings.Contains(string(out), "previous_cmek:\n      - file-kms:///k/east0\n      - file-kms:///k/east\n") {
		t.Errorf("from one value: %v\n%s", err, out)
	}
}
