package commands

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

var (
	fipsStandard = FIPSStatus{Mode: "off", Module: "latest"}
	fipsOnLatest = FIPSStatus{Mode: "only", Module: "latest", Enforced: true} // GODEBUG=fips140=only on a standard build
	fipsBuildOn  = FIPSStatus{Mode: "on", Module: "v1.0.0", Build: "v1.0.0-c2097c7c", DefaultGODEBUG: "fips140=on"}
	fipsBuildOK  = FIPSStatus{Mode: "only", Module: "v1.0.0", Build: "v1.0.0-c2097c7c", Enforced: true, DefaultGODEBUG: "fips140=on"}
)

func TestCheckRequireFIPS(t *testing.T) {
	for _, tc := range []struct {
		s    FIPSStatus
		ok   bool
		hint string
	}{
		{fipsStandard, false, "run the FIPS build"},
		{fipsOnLatest, false, "run the FIPS build"},
		{fipsBuildOn, false, "GODEBUG=fips140=only"},
		{fipsBuildOK, true, ""},
	} {
		err := checkRequireFIPS(tc.s)
		if tc.ok != (err == nil) {
			t.Errorf("%v: err = %v, want ok=%v", tc.s, err, tc.ok)
			continue
		}
		if err != nil && (ExitCode(err) != ExitNotFIPS || !strings.Contains(hintFor(err), tc.hint) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%v: exit %d, %q, hint %q; want exit %d, one line, hint with %q", tc.s, ExitCode(err), err, hintFor(err), ExitNotFIPS, tc.hint)
		}
	}
}

// runFIPS runs cmekctl with a given FIPS state and environment.
func runFIPS(t *testing.T, s FIPSStatus, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	f := &Factory{IO: ios, Registry: registry.Default, Now: time.Now, FIPS: func() FIPSStatus { return s },
		Getenv: func(k string) string { return env[k] }}
	code := Main(f, args)
	return code, out.String(), errOut.String()
}

// TestRequireFIPSRefusesEveryVerb: the flag, the environment variable and
// the config file each make a writing verb refuse on a build that is not in
// FIPS-only mode, with nothing written (no key, no audit log); the same
// verb runs when the state is right.
func TestRequireFIPSRefusesEveryVerb(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("require-fips: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag", nil, []string{"--require-fips"}},
		{"env", map[string]string{"CMEKCTL_REQUIRE_FIPS": "true"}, nil},
		{"config", map[string]string{"CMEKCTL_CONFIG": cfg}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"XDG_STATE_HOME": state}
			for k, v := range tc.env {
				env[k] = v
			}
			key := filepath.Join(dir, "kms-"+tc.name, "k1")
			args := append(append([]string{}, tc.args...), "kms", "create", "file-kms://"+key)
			for _, s := range []FIPSStatus{fipsStandard, fipsOnLatest, fipsBuildOn} {
				code, out, errOut := runFIPS(t, s, env, args...)
				if code != ExitNotFIPS || out != "" || strings.Count(errOut, "\n") != 2 || !strings.HasPrefix(errOut, "cmekctl: --require-fips: ") {
					t.Fatalf("%v: exit %d, stdout %q, stderr %q; want exit %d, an error and a hint line", s, code, out, errOut, ExitNotFIPS)
				}
				if _, err := os.Stat(filepath.Dir(key)); !os.IsNotExist(err) {
					t.Fatalf("%v: the refused verb made %s (%v)", s, filepath.Dir(key), err)
				}
				if _, err := os.Stat(state); !os.IsNotExist(err) {
					t.Fatalf("%v: the refused verb wrote the audit log under %s", s, state)
				}
			}
			if code, _, errOut := runFIPS(t, fipsBuildOK, env, append(args, "--audit-log", "off")...); code != 0 {
				t.Fatalf("FIPS build with fips140=only: exit %d, %s", code, errOut)
			}
			if _, err := os.Stat(key + ".key.json"); err != nil {
				t.Fatalf("FIPS build with fips140=only: no key made: %v", err)
			}
		})
	}
}

func TestVersionReportsFIPS(t *testing.T) {
	code, out, errOut := runFIPS(t, fipsBuildOK, nil, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var v struct{ FIPS FIPSStatus }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.FIPS != fipsBuildOK {
		t.Fatalf("version -o json: fips %+v (%v), want %+v\n%s", v.FIPS, err, fipsBuildOK, out)
	}
	_, out, _ = runFIPS(t, fipsStandard, nil, "version")
	if !strings.Contains(out, "off (module latest)") {
		t.Fatalf("version table does not say FIPS mode is off: %q", out)
	}
	// The process's own state agrees with crypto/fips140.
	s := currentFIPS()
	if s.Enforced != (s.Mode == "only") || (s.Build != "") != s.Frozen() {
		t.Fatalf("currentFIPS = %+v: mode, enforcement and build disagree", s)
	}
}
