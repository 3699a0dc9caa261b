package keyring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/internal/fipstest"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/filekms"
)

// testdata/pre-fips holds a node keyring and its file-kms key written by
// cmekctl before its wraps used nonces drawn by Go's FIPS 140-3 module
// (the caller drew them from crypto/rand; the layout is the same), with the
// SHA-256 of each data key. Test-only keys.
func copyPreFIPS(t *testing.T) (node, kms string) {
	t.Helper()
	base := t.TempDir()
	for _, f := range []string{"node/keyring.json", "kms/golden.key.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "pre-fips", f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(base, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(base, "node"), filepath.Join(base, "kms")
}

// preFIPSEnv opens every file-kms URI as the golden key in kmsDir (the
// keyring names the directory it was written in).
func preFIPSEnv(kmsDir string) Env {
	now := func() time.Time { return time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) }
	return Env{Now: now, Open: func(uri string) (provider.Key, error) {
		u, err := url.Parse(uri)
		if err != nil {
			return nil, err
		}
		u.Path = filepath.Join(kmsDir, filepath.Base(u.Path))
		return filekms.OpenWith(u, filekms.Options{Now: now})
	}}
}

func TestPreFIPSKeyringOpens(t *testing.T) {
	node, kms := copyPreFIPS(t)
	env := preFIPSEnv(kms)
	var want map[string]string
	b, err := os.ReadFile(filepath.Join("testdata", "pre-fips", "data-key-sha256.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantN int) {
		kr, err := Store{Dir: node}.Load()
		if err != nil {
			t.Fatal(err)
		}
		sl, err := NewSealer(context.Background(), env, kr)
		if err != nil {
			t.Fatalf("%s: open the keyring's keys (fips140=only: %v): %v", when, fipstest.Enforced(), err)
		}
		defer sl.Close()
		if len(sl.keys) != wantN {
			t.Fatalf("%s: %d data keys, want %d", when, len(sl.keys), wantN)
		}
		for id, sum := range want {
			got := sha256.Sum256(sl.keys[id])
			if hex.EncodeToString(got[:]) != sum {
				t.Fatalf("%s: data key %s does not match the one the old cmekctl wrapped", when, short(id))
			}
		}
	}
	check("as written", len(want))
	// Rotations by this cmekctl (module nonces) leave the old keys readable.
	g, err := LoadGroup(context.Background(), []Store{{Dir: node}}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{OpRotateDataKey, OpRotateStoreKey} {
		if _, err := Rotate(context.Background(), env, g, op, RotateOptions{}); err != nil {
			t.Fatalf("%s over a pre-FIPS keyring: %v", op, err)
		}
	}
	g.Close()
	check("after rotate data-key and store-key", len(want)+1)
}

// TestFIPSOnly runs the pre-FIPS golden test and the KMS-call and plan tests
// (enable, every rotation, add nodes) under GODEBUG=fips140=only.
func TestFIPSOnly(t *testing.T) {
	fipstest.RunOnly(t, "^(TestPreFIPSKeyringOpens|TestKMSCallsPerOperation|TestPlanMatchesRotate|TestSwapStoreKeyBundle|TestSwapDataKey)$")
}
