// Package fipstest runs tests a second time under GODEBUG=fips140=only, in a
// child process of the test binary, so that the ordinary `go test ./...`
// pass also proves that a format or a wrap works with Go's FIPS 140-3
// module enforcing its approved algorithms (the mode is fixed when a process
// starts, so it cannot be switched on inside a test).
package fipstest

import (
	"crypto/fips140"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Enforced reports whether this process runs with fips140=only.
func Enforced() bool { return fips140.Enforced() }

// RunOnly runs the tests of this test binary that match the -test.run
// pattern run in a child process with GODEBUG=fips140=only, and fails t with
// the child's output if any fails or none ran. In a process that already
// enforces the mode (the CI's FIPS pass) the tests ran here: it skips.
func RunOnly(t *testing.T, run string) {
	t.Helper()
	if Enforced() {
		t.Skip("this process already runs with GODEBUG=fips140=only")
	}
	if testing.Short() {
		t.Skip("-short: the fips140=only child run is left out")
	}
	godebug := "fips140=only"
	if g := os.Getenv("GODEBUG"); g != "" {
		godebug = g + "," + godebug // the last setting wins
	}
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("under GODEBUG=fips140=only, tests %s failed: %v\n%s", run, err, out)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("under GODEBUG=fips140=only, no test matched %s:\n%s", run, out)
	}
	t.Logf("under GODEBUG=fips140=only, %s passed", run)
}

// KMSSide runs f, the cryptography of a test server that stands in for a
// KMS, outside fips140=only enforcement: the KMS's own cryptography is the
// KMS's (and its own validation's) business, not cmekctl's, and emulators
// use caller-chosen GCM nonces the mode refuses. Only f's goroutine (and what
// it starts) is exempt; the client under test, on its own goroutine, stays
// enforced. Without fips140=only it just runs f. Never call it outside test
// support: internal/archtest checks that the cmekctl binary does not link it.
func KMSSide(f func()) { fips140.WithoutEnforcement(f) }

// Handler wraps a test server's handler with KMSSide.
func Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		KMSSide(func() { h.ServeHTTP(w, r) })
	})
}

// ServerEnv is env (os.Environ() form) with any fips140 setting dropped from
// GODEBUG, for a test KMS server started as a child process: it would
// otherwise inherit the test's fips140=only and refuse its own emulated
// cryptography. cmekctl's side of the connection stays in the mode.
func ServerEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			var keep []string
			for _, s := range strings.Split(v, ",") {
				if !strings.HasPrefix(strings.TrimSpace(s), "fips140=") && s != "" {
					keep = append(keep, s)
				}
			}
			if len(keep) == 0 {
				continue
			}
			kv = "GODEBUG=" + strings.Join(keep, ",")
		}
		out = append(out, kv)
	}
	return out
}
