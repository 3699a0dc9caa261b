// Package archtest holds tests of the repository's architecture: which
// packages may depend on which.
package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/cmekctl/cmekctl"

// coreRoots are the packages that hold keys and formats: they must not
// depend on the command line (STYLE §6), directly or through anything they
// import. A pattern ending in /... covers the subtree.
var coreRoots = []string{
	module + "/pkg/provider/...",
	module + "/pkg/keyring/...",
	module + "/pkg/stream/...",
	module + "/pkg/backup/...",
	module + "/pkg/safefile/...",
	module + "/pkg/verify/...",
	module + "/pkg/keywrap/...",
}

// forbidden are the command-line modules, matched as path prefixes.
var forbidden = []string{
	"github.com/spf13/cobra",
	"github.com/spf13/viper",
	"github.com/spf13/pflag",
}

type listedPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// goList runs go list -deps on patterns and returns every package it lists
// (the non-test build graph: what ships in the binary).
func goList(t *testing.T, patterns ...string) map[string]listedPackage {
	t.Helper()
	args := []string{"list", "-e", "-deps", "-json=ImportPath,Imports,Deps,Error"}
	cmd := exec.Command("go", append(args, patterns...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func isForbidden(path string) bool {
	for _, f := range forbidden {
		if path == f || strings.HasPrefix(path, f+"/") {
			return true
		}
	}
	return false
}

// chain returns an import path from `from` to `to` through pkgs, for the
// error message.
func chain(pkgs map[string]listedPackage, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var path []string
			for ; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, imp := range pkgs[p].Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return []string{from, "…", to}
}

// violations lists, for each core package in pkgs, the forbidden packages it
// depends on, with one import chain each.
func violations(pkgs map[string]listedPackage) []string {
	var out []string
	for _, p := range pkgs {
		if !isCore(p.ImportPath) {
			continue
		}
		for _, d := range p.Deps {
			if isForbidden(d) {
				out = append(out, strings.Join(chain(pkgs, p.ImportPath, d), " -> "))
			}
		}
	}
	slices.Sort(out)
	return out
}

func isCore(path string) bool {
	for _, r := range coreRoots {
		base := strings.TrimSuffix(r, "/...")
		if path == base || (strings.HasSuffix(r, "/...") && strings.HasPrefix(path, base+"/")) {
			return true
		}
	}
	return false
}

// TestCoreImportsNoCLI fails if a key-handling package depends on cobra,
// viper or pflag, directly or transitively.
func TestCoreImportsNoCLI(t *testing.T) {
	pkgs := goList(t, coreRoots...)
	n := 0
	for path, p := range pkgs {
		if isCore(path) {
			n++
			if p.Error != nil {
				t.Errorf("%s: %s", path, p.Error.Err)
			}
		}
	}
	// The six roots exist; an empty match would make the test vacuous.
	if n < len(coreRoots) {
		t.Fatalf("go list found %d core packages, want at least %d", n, len(coreRoots))
	}
	for _, v := range violations(pkgs) {
		t.Errorf("forbidden dependency: %s", v)
	}
}

// TestViolationsFindsTransitiveImport checks the checker on a made-up graph:
// a core package that reaches cobra through another package is reported with
// its chain, and a package outside the core is not.
func TestViolationsFindsTransitiveImport(t *testing.T) {
	keyring, helper, cobra := module+"/pkg/keyring", module+"/internal/helper", "github.com/spf13/cobra"
	commands := module + "/pkg/commands"
	pkgs := map[string]listedPackage{
		keyring:  {ImportPath: keyring, Imports: []string{helper}, Deps: []string{helper, cobra}},
		helper:   {ImportPath: helper, Imports: []string{cobra}, Deps: []string{cobra}},
		commands: {ImportPath: commands, Imports: []string{cobra}, Deps: []string{cobra}},
		cobra:    {ImportPath: cobra},
	}
	got := violations(pkgs)
	want := []string{keyring + " -> " + helper + " -> " + cobra}
	if !slices.Equal(got, want) {
		t.Errorf("violations = %q, want %q", got, want)
	}
}
