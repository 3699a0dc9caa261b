package commands

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionFromBuildInfo: a checkout build ("(devel)") shows its VCS
// revision, and "+dirty" with uncommitted changes; a go install build its
// module version.
func TestVersionFromBuildInfo(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/cmekctl/cmekctl", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-04T18:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	v := versionFrom(bi)
	if v.Version != "devel-0123456789ab+dirty" || v.Commit != rev || v.Date != "2026-12-04T18:00:00Z" || v.Module != "github.com/cmekctl/cmekctl" {
		t.Errorf("checkout build: %+v", v)
	}
	bi.Main.Version = "v1.2.3"
	if v := versionFrom(bi); v.Version != "v1.2.3" {
		t.Errorf("go install build: version %q", v.Version)
	}
	if v := versionFrom(nil); v.Version != "unknown" || v.Commit != "unknown" {
		t.Errorf("no build info: %+v", v)
	}
}

func TestRootVersionFlag(t *testing.T) {
	code, out, _ := runFIPS(t, FIPSStatus{}, map[string]string{}, "--version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out, "cmekctl ") || !strings.Contains(out, "(commit ") || strings.Contains(out, "Usage") {
		t.Errorf("--version printed %q", out)
	}
}
