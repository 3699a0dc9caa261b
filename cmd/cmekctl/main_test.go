package main

import (
	"crypto/fips140"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cmekctl/cmekctl/internal/startgc"
)

func TestMain(m *testing.M) {
	// This test binary links package main, so startgc's init held the
	// collector off: the tests themselves run with it on.
	startgc.Resume()
	testscript.Main(m, map[string]func(){
		"cmekctl": func() { os.Exit(run(os.Args[1:])) },
		// holdlock DIR VERB READY takes DIR's keyring lock as VERB would,
		// creates the file READY and sleeps until killed (lock.txtar).
		"holdlock": holdLock,
		// waitfile FILE waits (up to 20 s) until FILE exists.
		"waitfile": waitFile,
		// exitcode N cmekctl ARGS... runs cmekctl and succeeds only if it
		// exits with N, so scripts assert the documented exit codes.
		"exitcode": func() {
			want, err := strconv.Atoi(os.Args[1])
			if err != nil || len(os.Args) < 3 || os.Args[2] != "cmekctl" {
				fmt.Fprintln(os.Stderr, "usage: exitcode N cmekctl ARGS...")
				os.Exit(100)
			}
			if got := run(os.Args[3:]); got != want {
				fmt.Fprintf(os.Stderr, "exitcode: cmekctl exited %d, want %d\n", got, want)
				os.Exit(101)
			}
			os.Exit(0)
		},
	})
}

// TestScripts runs every CLI script in testdata: a command, its expected
// stdout, stderr and exit code, with files as -- name -- sections.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		// cloudfake: the Cloud API fake and local-kms for cloud_*.txtar (cloud_test.go).
		// cutfile, flipbyte, mkfifo: damaged inputs (filecmds_test.go).
		// crdbstart: a model CockroachDB node started with unlock's values (crdbcmd_test.go).
		// jsonschema: a report against its schema (jsonschema_test.go).
		// runbook: the runbooks' shell blocks as a script (runbook_test.go).
		Cmds: mergeCmds(cloudCmds(t), fileCmds(), crdbCmds(), schemaCmds(), runbookCmds(docsDir(t))),
		// [fips]: a GOFIPS140 build running with GODEBUG=fips140=only; [root]: euid 0.
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "fips":
				return fips140.Enforced() && fips140.Version() != "latest", nil
			case "root": // can chown a file to another user
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(e *testscript.Env) error {
			e.Setenv("NO_COLOR", "1")
			// The FIPS pass's GODEBUG=fips140=only reaches cmekctl in
			// every script (testscript starts from a clean environment).
			if g := os.Getenv("GODEBUG"); g != "" {
				e.Setenv("GODEBUG", g)
			}
			e.Setenv("XDG_STATE_HOME", e.WorkDir+"/state")
			return nil
		},
	})
}

func docsDir(t *testing.T) string {
	d, err := filepath.Abs(filepath.Join("..", "..", "docs"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mergeCmds(ms ...map[string]func(ts *testscript.TestScript, neg bool, args []string)) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	out := map[string]func(ts *testscript.TestScript, neg bool, args []string){}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
