package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
)

// complete runs cobra's hidden __complete command, as the shell scripts do,
// and returns the completions and the directive line.
func shellComplete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	io, _, _, _ := iostreams.Test()
	f := NewFactory()
	f.IO = io
	root := NewRootCmd(f)
	registerCompletions(root)
	completeEveryFlag(root) // as Main does for a completion request
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"__complete"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("__complete %q: %v (stderr %s)", args, err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

// run runs cmekctl in-process and fails the test on a non-zero exit.
func runForCompletion(t *testing.T, args ...string) {
	t.Helper()
	io, _, out, errOut := iostreams.Test()
	f := NewFactory()
	f.IO = io
	if code := Main(f, args); code != 0 {
		t.Fatalf("cmekctl %q: exit %d\n%s%s", args, code, out, errOut)
	}
}

// Directives as __complete prints them (cobra.ShellCompDirective values).
const (
	dirNoFileComp = ":4"
	dirFilterDirs = ":16"
)

func TestCompletionFromKeyrings(t *testing.T) {
	dir := t.TempDir()
	// Keep the audit log and config of the commands that set up the keyrings
	// inside the test's directory.
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	uri := "file-kms://" + filepath.Join(dir, "kms", "k1")
	n1, n2, n3 := filepath.Join(dir, "n1"), filepath.Join(dir, "n2"), filepath.Join(dir, "n3")
	runForCompletion(t, "kms", "create", uri)
	runForCompletion(t, "enable", "--cluster-id", "c1", "--region", "us-east1", "--cmek", uri, "--keyring", n1, "--node", "n1")
	runForCompletion(t, "enable", "--cluster-id", "c1", "--region", "eu-west1", "--cmek", uri, "--keyring", n2, "--node", "n2")
	runForCompletion(t, "enable", "--cluster-id", "c1", "--region", "ap-south1", "--cmek", uri, "--keyring", n3, "--node", "n3")
	// A keyring that others can read is refused by Load, so it offers nothing.
	if err := os.Chmod(n3, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		args      []string
		want      []string
		directive string
	}{
		{"refused keyring skipped among others", []string{"enable", "--keyring", n1, "--keyring", n3, "--keyring", n2, "--region", ""}, []string{"eu-west1", "us-east1"}, dirNoFileComp},
		{"prefix", []string{"enable", "--keyring", n1, "--keyring", n2, "--region", "eu"}, []string{"eu-west1"}, dirNoFileComp},
		{"both regions", []string{"enable", "--keyring", n1, "--keyring", n2, "--region", ""}, []string{"eu-west1", "us-east1"}, dirNoFileComp},
		{"no keyring given", []string{"enable", "--region", ""}, nil, dirNoFileComp},
		{"missing keyring", []string{"enable", "--keyring", filepath.Join(dir, "nope"), "--region", ""}, nil, dirNoFileComp},
		{"refused keyring", []string{"enable", "--keyring", n3, "--region", ""}, nil, dirNoFileComp},
		{"cluster ids, distinct", []string{"enable", "--keyring", n1, "--keyring", n2, "--cluster-id", ""}, []string{"c1"}, dirNoFileComp},
		{"nodes", []string{"enable", "--keyring", n2, "--keyring", n1, "--node", ""}, []string{"n1", "n2"}, dirNoFileComp},
		{"cmek uri", []string{"rotate", "cmek", "--keyring", n1, "--cmek", ""}, []string{uri}, dirNoFileComp},
		{"keyring completes directories", []string{"status", "--keyring", ""}, nil, dirFilterDirs},
		{"single keyring flag", []string{"unlock", "--keyring", ""}, nil, dirFilterDirs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, directive := shellComplete(t, tt.args...)
			if !slices.Equal(got, tt.want) || directive != tt.directive {
				t.Errorf("__complete %q = %q %s, want %q %s", tt.args, got, directive, tt.want, tt.directive)
			}
		})
	}
}

func TestCompletionKeepsExisting(t *testing.T) {
	got, directive := shellComplete(t, "status", "-o", "")
	if want := []string{OutputTable, OutputTSV, OutputJSON, OutputYAML}; !slices.Equal(got, want) || directive != dirNoFileComp {
		t.Errorf("-o completes %q %s, want %q %s", got, directive, want, dirNoFileComp)
	}
}
