package commands

import (
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
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	// FIPS: Go's FIPS 140-3 module and mode (fips.go).
	FIPS FIPSStatus `json:"fips"`
}

func buildInfo() versionInfo {
	v := versionInfo{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && v.Commit == "":
				v.Commit = s.Value
			case s.Key == "vcs.time" && v.Date == "":
				v.Date = s.Value
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
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildInfo()
			v.FIPS = f.fips()
			return p().print(v, table{Headers: []string{"version", "commit", "date", "go", "platform", "fips"},
				Rows: [][]string{{v.Version, v.Commit, v.Date, v.GoVersion, v.Platform, v.FIPS.String()}}})
		},
	}
}
