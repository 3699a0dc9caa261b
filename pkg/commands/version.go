package commands

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at release time through -ldflags -X; go install builds fall back to
// the module's build information.
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

type versionInfo struct {
	Module    string `json:"module,omitempty"`
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	// FIPS: Go's FIPS 140-3 module and mode (fips.go).
	FIPS FIPSStatus `json:"fips"`
}

func buildInfo() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(bi)
}

// versionFrom fills what -ldflags did not set from the build information: a
// release module version, else, for a build of a checkout, "devel" with the
// VCS revision (and "+dirty" for uncommitted changes).
func versionFrom(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		v.Module = bi.Main.Path
		modified := false
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && v.Commit == "":
				v.Commit = s.Value
			case s.Key == "vcs.time" && v.Date == "":
				v.Date = s.Value
			case s.Key == "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		if v.Version == "" && v.Commit != "" {
			v.Version = "devel-" + v.Commit[:min(12, len(v.Commit))]
			if modified {
				v.Version += "+dirty"
			}
		}
	}
	for _, p := range []*string{&v.Version, &v.Commit, &v.Date} {
		if *p == "" {
			*p = "unknown"
		}
	}
	return v
}

func newCmdVersion(f *Factory, p func() printer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show cmekctl's version, commit, build date and Go version",
		Long: `Show cmekctl's version, VCS commit and build date (set at release, or read
from the build information of a go install or a checkout build), the Go
version and platform, and Go's FIPS 140-3 module.`,
		Example: "  cmekctl version\n  cmekctl version -o json | jq -r .commit\n  cmekctl --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildInfo()
			v.FIPS = f.fips()
			return p().print(v, table{Headers: []string{"version", "commit", "date", "go", "platform", "fips"},
				Rows: [][]string{{v.Version, v.Commit, v.Date, v.GoVersion, v.Platform, v.FIPS.String()}}})
		},
	}
}

// addVersionFlag gives the root command --version: one line, as other
// tools print it.
func addVersionFlag(root *cobra.Command) {
	v := buildInfo()
	root.Version = v.Version
	root.SetVersionTemplate(fmt.Sprintf("cmekctl %s (commit %s, %s, %s)\n", v.Version, v.Commit, v.GoVersion, v.Platform))
}
