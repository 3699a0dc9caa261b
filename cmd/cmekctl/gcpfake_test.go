package main

import (
	"strconv"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
)

var (
	gcpMu       sync.Mutex
	gcpByScript = map[*testscript.TestScript]*gcpkmsfake.Server{}
)

// gcpFakeCmd is the script command gcpkmsfake: "start" runs the in-house
// Cloud KMS fake on 127.0.0.1 in the test process and sets $GCP_ENDPOINT
// to http://ADDR, which scripts pass in a gcp-kms URI's ENDPOINT parameter,
// as a user points cmekctl at an emulator; "calls METHOD N" checks that the
// fake saw at least N calls of METHOD (e.g. Encrypt).
func gcpFakeCmd(t *testing.T) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) == 0 {
			ts.Fatalf("usage: gcpkmsfake start | calls METHOD N")
		}
		gcpMu.Lock()
		defer gcpMu.Unlock()
		switch args[0] {
		case "start":
			s := gcpkmsfake.Start(t)
			gcpByScript[ts] = s
			ts.Setenv("GCP_ENDPOINT", "http://"+s.Addr())
		case "calls":
			s := gcpByScript[ts]
			if s == nil || len(args) != 3 {
				ts.Fatalf("usage: gcpkmsfake start, then gcpkmsfake calls METHOD N")
			}
			n, err := strconv.Atoi(args[2])
			ts.Check(err)
			if got := s.Calls(args[1]); got < n {
				ts.Fatalf("gcpkmsfake: %d %s calls, want at least %d", got, args[1], n)
			}
		default:
			ts.Fatalf("usage: gcpkmsfake start | calls METHOD N")
		}
	}
}
