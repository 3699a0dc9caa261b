package commands

// BUG (kept out of the build: rename to _test.go to run it): errors that
// are not about a key or ciphertext are reported as exit 22 ("wrong-key")
// with the hint "a key or ciphertext did not authenticate: the wrong key
// ...". ExitCode maps every MISUSE-class provider error to ExitMisuse, and
// providers also use MISUSE for an operation the KMS does not have
// (vaulttransit.noEquivalent: kms disable / enable / schedule-deletion /
// cancel-deletion on Vault) and for a key directory others can read
// (filekms create: "Permissions"). The provider's own message is right;
// the exit code and the hint send the operator after the wrong problem.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMisuseHintOnlyForAuthFailures(t *testing.T) {
	v := vaultWorld(t)
	uri := v.newKey(t)
	for _, verb := range []string{"disable", "schedule-deletion"} {
		r := v.run(t, "kms", verb, uri)
		if r.code == ExitMisuse || strings.Contains(r.errOut, "did not authenticate") {
			t.Errorf("vault kms %s: exit %d, stderr %q: an operation Vault lacks is not a wrong key", verb, r.code, r.errOut)
		}
	}
	f := fileWorld(t)
	open := filepath.Join(t.TempDir(), "kms")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	r := f.run(t, "kms", "create", "file-kms://"+filepath.Join(open, "k1"))
	if r.code == ExitMisuse || strings.Contains(r.errOut, "did not authenticate") {
		t.Errorf("file kms create in a 0755 directory: exit %d, stderr %q: a permissions problem is not a wrong key (exit %d is permissions)", r.code, r.errOut, ExitPermissions)
	}
}
