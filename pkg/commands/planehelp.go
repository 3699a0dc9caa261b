package commands

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Help by plane: a verb that also acts through the Cloud API (--cloud)
// shows in `cmekctl VERB --help` its standalone (node disk) flags and text,
// and one line naming its Cloud flags; `cmekctl VERB --cloud --help` shows
// the Cloud flags and text, and one line naming the standalone flags. The
// flags are not hidden: shell completion offers every flag, and the
// generated reference (docs/reference, docs/man) lists them all.

const (
	// planeAnnotation marks a flag of one plane only.
	planeAnnotation  = "cmekctl_plane"
	planeCloud       = "cloud"
	planeStandalone  = "standalone"
	cloudHelpAnnoKey = "cmekctl_cloud_help"
)

// markPlane marks the flags of cmd named as flags of plane.
func markPlane(cmd *cobra.Command, plane string, names ...string) {
	for _, n := range names {
		if cmd.Flags().Lookup(n) != nil {
			_ = cmd.Flags().SetAnnotation(n, planeAnnotation, []string{plane})
		}
	}
}

func flagPlane(f *pflag.Flag) string {
	if v := f.Annotations[planeAnnotation]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// cloudHelpView: the help asked for is the Cloud plane's (--cloud given
// with --help).
func cloudHelpView(c *cobra.Command) bool {
	f := c.Flags().Lookup("cloud")
	return f != nil && f.Changed && f.Value.String() == "true" && hasPlaneFlags(c)
}

func hasPlaneFlags(c *cobra.Command) bool {
	found := false
	c.LocalFlags().VisitAll(func(f *pflag.Flag) { found = found || flagPlane(f) != "" })
	return found
}

// planeFlags is the "Flags:" section: the local flags of the plane shown,
// then a line naming the other plane's flags and how to see them.
func planeFlags(c *cobra.Command) string {
	hide := planeCloud
	if cloudHelpView(c) {
		hide = planeStandalone
	}
	shown := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	var hidden []string
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if flagPlane(f) == hide {
			hidden = append(hidden, "--"+f.Name)
			return
		}
		shown.AddFlag(f)
	})
	out := strings.TrimRight(shown.FlagUsages(), " \n")
	if len(hidden) == 0 {
		return out
	}
	slices.Sort(hidden)
	if hide == planeCloud {
		return out + "\n\nCloud flags (with --cloud, through the CockroachDB Cloud API): " + strings.Join(hidden, ", ") +
			"\n  see: " + c.CommandPath() + " --cloud --help"
	}
	return out + "\n\nStandalone flags (node disks; not with --cloud): " + strings.Join(hidden, ", ") +
		"\n  see: " + c.CommandPath() + " --help"
}

// planeLong is the help text of the plane shown: the standalone text without
// the --cloud paragraph, or the short line and the --cloud paragraph.
func planeLong(c *cobra.Command) string {
	cloud := c.Annotations[cloudHelpAnnoKey]
	switch {
	case cloud == "":
		return c.Long
	case cloudHelpView(c):
		return c.Short + ".\n\n" + cloud
	}
	return strings.TrimRight(strings.Replace(c.Long, "\n\n"+cloud, "", 1), "\n")
}

// setPlaneTemplates makes help and usage show one plane at a time (with
// planeFlags and planeLong, which addTemplateFuncs registers).
func setPlaneTemplates(root *cobra.Command) {
	root.SetHelpTemplate(strings.Replace(root.HelpTemplate(), "(or .Long .Short)", "(or (planeLong .) .Short)", 1))
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}", "{{planeFlags .}}", 1))
}
