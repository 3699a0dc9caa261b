package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
)

func treeFactory() *Factory {
	io, _, _, _ := iostreams.Test()
	return &Factory{IO: io, Now: time.Now, Getenv: func(string) string { return "" }}
}

// shape lists every command path under c with its flags (name, shorthand,
// default, usage, hidden), so that two trees compare by what a user sees.
func shape(c *cobra.Command) []string {
	var out []string
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		out = append(out, "cmd "+c.CommandPath()+" | "+c.Short)
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			out = append(out, fmt.Sprintf("flag %s --%s -%s %q %q %v", c.CommandPath(), fl.Name, fl.Shorthand, fl.DefValue, fl.Usage, fl.Hidden))
		})
		for _, s := range c.Commands() {
			visit(s)
		}
	}
	visit(c)
	return out
}

// The verb table is the tree: the same verbs.
func TestVerbTableIsTheTree(t *testing.T) {
	var names []string
	for _, c := range NewRootCmd(treeFactory()).Commands() {
		names = append(names, c.Name())
	}
	var table []string
	for _, v := range verbs() {
		table = append(table, v.name)
	}
	slices.Sort(table) // cobra lists commands sorted
	if !slices.Equal(names, table) {
		t.Fatalf("tree verbs %v, table %v", names, table)
	}
}

// A root built for one verb holds that verb only, and that verb's subtree
// and the root's own flags are exactly those of the whole tree: no verb's
// construction depends on another's.
func TestOneVerbSubtreeMatchesWholeTree(t *testing.T) {
	whole := NewRootCmd(treeFactory())
	rootFlags := func(r *cobra.Command) []string {
		var out []string
		r.PersistentFlags().VisitAll(func(fl *pflag.Flag) { out = append(out, fl.Name+"="+fl.DefValue) })
		return out
	}
	for _, v := range verbs() {
		part := newRootCmd(treeFactory(), v.name)
		if len(part.Commands()) != 1 || part.Commands()[0].Name() != v.name {
			t.Fatalf("root for %s holds %d verbs", v.name, len(part.Commands()))
		}
		want, _, _ := whole.Find([]string{v.name})
		if got := shape(part.Commands()[0]); !slices.Equal(got, shape(want)) {
			t.Errorf("%s built alone differs from the whole tree's:\n%s\nvs\n%s", v.name, strings.Join(got, "\n"), strings.Join(shape(want), "\n"))
		}
		if !slices.Equal(rootFlags(part), rootFlags(whole)) {
			t.Errorf("root flags with %s alone: %v, whole tree: %v", v.name, rootFlags(part), rootFlags(whole))
		}
	}
}

func TestLazyVerb(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"version"}, "version"},
		{[]string{"rotate", "data-key", "--keyring", "d"}, "rotate"},
		{[]string{"verify-destroyed"}, "verify-destroyed"},
		{nil, ""},
		{[]string{"-o", "json", "version"}, ""}, // a flag first: its value could look like a verb
		{[]string{"--config", "status", "version"}, ""},
		{[]string{"help", "version"}, ""},
		{[]string{"__complete", "ver"}, ""},
		{[]string{"completion", "bash"}, ""},
		{[]string{"verison"}, ""}, // suggestions need every verb
		{[]string{"config", "view"}, ""},
		{[]string{"node", "add"}, ""},
		{[]string{"region", "add"}, ""},
	} {
		if got := lazyVerb(tc.args); got != tc.want {
			t.Errorf("lazyVerb(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// A config file may hold the default of any verb's flag: a verb run with
// its subtree alone still accepts one that belongs to another verb, and
// still refuses a key that is no flag at all.
func TestLazyTreeConfigKeysOfOtherVerbs(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	run := func(body string) (int, string) {
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		f := treeFactory()
		f.Getenv = func(k string) string {
			switch k {
			case "CMEKCTL_CONFIG":
				return cfg
			case "XDG_STATE_HOME", "XDG_CONFIG_HOME", "HOME":
				return dir
			}
			return ""
		}
		code := Main(f, []string{"version"})
		return code, f.IO.ErrOut.(interface{ String() string }).String()
	}
	if code, errOut := run("parallel: 2\nexpect-bytes: 10\n"); code != 0 {
		t.Fatalf("version with another verb's flag defaults in the config file: exit %d, %s", code, errOut)
	}
	if code, errOut := run("no-such-flag: 2\n"); code != ExitUsage || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("version with an unknown config key: exit %d, %s; want %d naming it", code, errOut, ExitUsage)
	}
}
