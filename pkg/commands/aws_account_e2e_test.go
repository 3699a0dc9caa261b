package commands

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/verify"
)

const (
	hookOtherAccount = "aws: the caller in another account"
	hookOwnAccount   = "aws: the caller in the key's account"
	otherAccount     = "999988887777"
)

// TestAWSCallerInAnotherAccount: the key is deleted (AWS answers NotFound
// for its pinned ARN at its pinned endpoint), but STS GetCallerIdentity now
// puts the caller in another account: verify-destroyed says INCONCLUSIVE
// with the identity mismatch, never DESTROYED; with the caller back in the
// key's account, DESTROYED. Through cmekctl's Main, local-kms and the fake
// STS beside it (ststest).
func TestAWSCallerInAnotherAccount(t *testing.T) {
	w := awsWorld(t)
	uri := w.newKey(t)
	dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 1)
	w.hooks[cellDestroyed](t, w, uri)
	verdict := func() e2eVerify {
		t.Helper()
		r := w.run(t, append([]string{"verify-destroyed", "-o", "json"}, keyringArgs(dirs...)...)...)
		var v e2eVerify
		if err := json.Unmarshal([]byte(r.out), &v); err != nil {
			t.Fatalf("exit %d: %v\n%s", r.code, err, r.errOut)
		}
		return v
	}
	w.hooks[hookOtherAccount](t, w, uri)
	v := verdict()
	if v.Verdict != verify.Inconclusive {
		t.Fatalf("caller in another account: %s, want INCONCLUSIVE\n%s", v.Verdict, checksText(v))
	}
	found := false
	for _, c := range v.Checks {
		if c.Outcome == verify.OutDestroyed {
			t.Errorf("%s: destroyed (%s), though the caller is in another account", c.Check, c.Result)
		}
		found = found || c.Check == checkProve && strings.Contains(c.Result, "IDENTITY MISMATCH: the caller is in account "+otherAccount)
	}
	if !found {
		t.Errorf("no prove check names the account mismatch\n%s", checksText(v))
	}
	w.hooks[hookOwnAccount](t, w, uri)
	if v := verdict(); v.Verdict != verify.Destroyed {
		t.Fatalf("caller in the key's account: %s, want DESTROYED\n%s", v.Verdict, checksText(v))
	}
}
