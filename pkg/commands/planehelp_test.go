package commands

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
)

// helpOf runs cmekctl ARGS --help in-process and returns what it printed.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	io, _, out, errOut := iostreams.Test()
	f := NewFactory()
	f.IO = io
	if code := Main(f, append(args, "--help")); code != 0 {
		t.Fatalf("cmekctl %q --help: exit %d\n%s", args, code, errOut)
	}
	return out.String()
}

// flagsSection is the "Flags:" section of a help (an example may start a
// line with a flag).
func flagsSection(help string) string {
	_, flags, _ := strings.Cut(help, "\nFlags:\n")
	flags, _, _ = strings.Cut(flags, "\nGlobal Flags:")
	return flags
}

// flagLine matches a flag's own line in a "Flags:" section.
func flagLine(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^\s+(-\w, )?--` + regexp.QuoteMeta(name) + `( |$)`)
}

// Every verb with a Cloud plane: its standalone help lists no Cloud-only
// flag (one line names them and the --cloud --help that shows them), its
// --cloud help lists them and no standalone-only flag, and shell completion
// offers every flag of both planes.
func TestHelpByPlane(t *testing.T) {
	root := NewRootCmd(NewFactory())
	seen := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		var cloud, standalone []string
		c.LocalFlags().VisitAll(func(fl *pflag.Flag) {
			switch flagPlane(fl) {
			case planeCloud:
				cloud = append(cloud, fl.Name)
			case planeStandalone:
				standalone = append(standalone, fl.Name)
			}
		})
		if len(cloud) == 0 {
			return
		}
		seen++
		args := strings.Fields(strings.TrimPrefix(c.CommandPath(), "cmekctl "))
		plainHelp, onCloudHelp := helpOf(t, args...), helpOf(t, append(args, "--cloud")...)
		plain, onCloud := flagsSection(plainHelp), flagsSection(onCloudHelp)
		for _, n := range cloud {
			if flagLine(n).MatchString(plain) {
				t.Errorf("%s --help lists the Cloud-only flag --%s", c.CommandPath(), n)
			}
			if !flagLine(n).MatchString(onCloud) {
				t.Errorf("%s --cloud --help does not list --%s", c.CommandPath(), n)
			}
		}
		if !strings.Contains(plain, "see: "+c.CommandPath()+" --cloud --help") {
			t.Errorf("%s --help does not say where the Cloud flags are", c.CommandPath())
		}
		for _, n := range standalone {
			if flagLine(n).MatchString(onCloud) {
				t.Errorf("%s --cloud --help lists the standalone flag --%s", c.CommandPath(), n)
			}
			if !flagLine(n).MatchString(plain) {
				t.Errorf("%s --help does not list --%s", c.CommandPath(), n)
			}
		}
		if p := c.Annotations[cloudHelpAnnoKey]; p != "" {
			if strings.Contains(plainHelp, p) {
				t.Errorf("%s --help shows the --cloud paragraph", c.CommandPath())
			}
			if !strings.Contains(onCloudHelp, p) {
				t.Errorf("%s --cloud --help lacks the --cloud paragraph", c.CommandPath())
			}
			if !strings.Contains(c.Long, p) {
				t.Errorf("%s: the reference (Long) lacks the --cloud paragraph", c.CommandPath())
			}
		}
		got, _ := shellComplete(t, append(args, "--")...)
		for _, n := range append(cloud, standalone...) {
			if !strings.Contains(strings.Join(got, "\n"), "--"+n) {
				t.Errorf("completion of %s -- does not offer --%s", c.CommandPath(), n)
			}
		}
	}
	walk(root)
	if seen < 8 {
		t.Fatalf("%d verbs with Cloud flags, want at least 8 (enable, status, rotate x3, revoke, verify-destroyed, backup-keys list, region add)", seen)
	}
}
