package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func known(name string) bool { return name == "output" || name == "keyring" }

func TestParseValid(t *testing.T) {
	c, err := Load("testdata/cluster.yaml", known)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterID != "c1" || len(c.Regions) != 2 || len(c.Regions[0].Nodes) != 2 || c.Regions[1].Nodes[0].Name != "n3" {
		t.Fatalf("parsed %+v", c)
	}
	if got := c.Flags["output"].Values; len(got) != 1 || got[0] != "json" {
		t.Fatalf("output flag %v", got)
	}
	if got := c.Flags["keyring"].Values; len(got) != 2 {
		t.Fatalf("keyring flag %v", got)
	}
	sel, err := c.Select([]string{"us-east1"}, []string{"n2"})
	if err != nil || len(sel) != 1 || len(sel[0].Nodes) != 1 || sel[0].Nodes[0].Name != "n2" {
		t.Fatalf("select: %+v %v", sel, err)
	}
	if _, err := c.Select(nil, []string{"n9"}); err == nil {
		t.Fatal("selected a node that does not exist")
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	base, _ := os.ReadFile("testdata/cluster.yaml")
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown top-level field", "output: json", "outptu: json", `:13: unknown field "outptu"`},
		{"unknown region field", "    cmek: file-kms:///var/lib/cmekctl/kms/west", "    cmk: x", `:10: unknown region field "cmk"`},
		{"node in two regions", "{name: n3,", "{name: n1,", `:12: node "n1" is in two regions, "us-east1" (line 7) and "us-west1"`},
		{"duplicate keyring", "n3/cmek}", "n1/cmek}", `:12: node "n3": keyring /var/lib/cockroach/n1/cmek is also used on line 7`},
		{"relative keyring", "/var/lib/cockroach/n2/cmek", "n2/cmek", `:8: node "n2": keyring must be an absolute path`},
		{"bad plane", "plane: standalone", "plane: moon", `:2: plane "moon"`},
		{"duplicate region", "name: us-west1", "name: us-east1", `:9: region "us-east1" is listed twice (first on line 4)`},
		{"missing cmek", "    cmek: file-kms:///var/lib/cmekctl/kms/east\n", "", `:4: region "us-east1" has no cmek URI`},
		{"twice", "plane: standalone", "plane: standalone\nplane: cloud", `:3: "plane" is set twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(string(base), tc.from, tc.to, 1)
			if data == string(base) {
				t.Fatal("the case changed nothing")
			}
			_, err := Parse("cfg.yaml", []byte(data), known)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cfg.yaml"+tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, "cfg.yaml"+tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	base, _ := os.ReadFile("testdata/cluster.yaml")
	f.Add(base)
	f.Add([]byte("cluster_id: [1\n"))
	f.Add([]byte("regions: {a: b}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data, known)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not wrapped as ErrInvalid: %v", err)
			}
			return
		}
		// What Parse accepts is consistent: unique nodes, absolute keyrings.
		seen := map[string]bool{}
		for _, r := range c.Regions {
			for _, n := range r.Nodes {
				if seen[n.Name] || !strings.HasPrefix(n.Keyring, "/") {
					t.Fatalf("accepted an invalid node %+v", n)
				}
				seen[n.Name] = true
			}
		}
	})
}
