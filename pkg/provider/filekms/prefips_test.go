package filekms

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/cmekctl/cmekctl/internal/fipstest"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// testdata/pre-fips: a two-version key and one wrap under each version,
// written by cmekctl before its wraps used nonces drawn by Go's FIPS 140-3
// module (same layout: version || nonce || ciphertext || tag). Test-only key.
func TestPreFIPSWrapsOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kms")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "pre-fips", "golden.key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "golden.key.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var wraps []struct {
		Version    string `json:"version"`
		AAD        []byte `json:"aad"`
		Plaintext  []byte `json:"plaintext"`
		Ciphertext []byte `json:"ciphertext"`
	}
	b, err = os.ReadFile(filepath.Join("testdata", "pre-fips", "wraps.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &wraps); err != nil || len(wraps) != 2 {
		t.Fatalf("wraps.json: %d wraps, %v", len(wraps), err)
	}
	u, _ := url.Parse("file-kms://" + filepath.Join(dir, "golden"))
	k, err := OpenWith(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, w := range wraps {
		pt, err := k.Unwrap(ctx, provider.Wrapped{Ciphertext: w.Ciphertext, KeyVersion: w.Version}, w.AAD)
		if err != nil {
			t.Fatalf("version %s (fips140=only: %v): %v", w.Version, fipstest.Enforced(), err)
		}
		if !bytes.Equal(pt, w.Plaintext) {
			t.Fatalf("version %s: %q, want %q", w.Version, pt, w.Plaintext)
		}
		if _, err := k.Unwrap(ctx, provider.Wrapped{Ciphertext: w.Ciphertext}, []byte("other binding")); provider.Classify(err) != provider.Misuse {
			t.Fatalf("version %s under another binding: %v, want MISUSE", w.Version, err)
		}
	}
	// A new wrap under the primary (version 2) keeps the layout.
	nw, err := k.Wrap(ctx, wraps[1].Plaintext, wraps[1].AAD)
	if err != nil {
		t.Fatal(err)
	}
	if nw.KeyVersion != "2" || len(nw.Ciphertext) != len(wraps[1].Ciphertext) || !bytes.Equal(nw.Ciphertext[:4], wraps[1].Ciphertext[:4]) {
		t.Fatalf("new wrap: version %s, %d bytes; want version 2, %d bytes, same prefix", nw.KeyVersion, len(nw.Ciphertext), len(wraps[1].Ciphertext))
	}
}

// TestFIPSOnly runs the golden test and the provider suite under
// GODEBUG=fips140=only.
func TestFIPSOnly(t *testing.T) {
	fipstest.RunOnly(t, "^(TestPreFIPSWrapsOpen|TestSuite)$")
}
