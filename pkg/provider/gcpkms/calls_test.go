package gcpkms_test

import (
	"context"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
)

var methods = []string{"GetKeyRing", "CreateKeyRing", "CreateCryptoKey", "GetCryptoKey", "ListCryptoKeyVersions",
	"Encrypt", "Decrypt", "CreateCryptoKeyVersion", "GetCryptoKeyVersion", "UpdateCryptoKeyPrimaryVersion",
	"UpdateCryptoKeyVersion", "DestroyCryptoKeyVersion", "RestoreCryptoKeyVersion"}

func snapshot(s *gcpkmsfake.Server) map[string]int {
	m := map[string]int{}
	for _, x := range methods {
		m[x] = s.Calls(x)
	}
	return m
}

// TestCallsPerVerb pins the Cloud KMS calls each operation makes (the
// figures in docs/providers/gcp.md), on a key with two versions.
func TestCallsPerVerb(t *testing.T) {
	srv := gcpkmsfake.Start(t)
	name := randName(t)
	k := gcpkms.New(srv.Client(ctxT(t)), name, "gcp-kms:///"+name+"?AUTH=implicit").WithRetry(fastRetry)
	ctx := ctxT(t)
	steps := []struct {
		verb string
		run  func(context.Context) error
		want map[string]int
	}{
		{"create (new ring)", func(c context.Context) error { _, err := k.Create(c); return err },
			map[string]int{"GetKeyRing": 1, "CreateKeyRing": 1, "CreateCryptoKey": 1, "GetCryptoKey": 1, "ListCryptoKeyVersions": 1}},
		{"rotate", func(c context.Context) error { _, err := k.Rotate(c); return err },
			map[string]int{"CreateCryptoKeyVersion": 1, "UpdateCryptoKeyPrimaryVersion": 1, "GetCryptoKey": 1, "ListCryptoKeyVersions": 1}},
		{"wrap", func(c context.Context) error { _, err := k.Wrap(c, []byte("k"), []byte("a")); return err },
			map[string]int{"Encrypt": 1}},
		{"unwrap", func(c context.Context) error {
			wr, err := k.Wrap(c, []byte("k"), []byte("a"))
			if err != nil {
				return err
			}
			_, err = k.Unwrap(c, wr, []byte("a"))
			return err
		}, map[string]int{"Encrypt": 1, "Decrypt": 1}},
		{"describe", func(c context.Context) error { _, err := k.Describe(c); return err },
			map[string]int{"GetCryptoKey": 1, "ListCryptoKeyVersions": 1}},
		{"disable (2 versions)", func(c context.Context) error { _, err := k.Disable(c); return err },
			map[string]int{"ListCryptoKeyVersions": 2, "UpdateCryptoKeyVersion": 2, "GetCryptoKey": 1}},
		{"enable (2 versions)", func(c context.Context) error { _, err := k.Enable(c); return err },
			map[string]int{"ListCryptoKeyVersions": 2, "UpdateCryptoKeyVersion": 2, "GetCryptoKey": 1}},
		{"schedule-deletion (2 versions)", func(c context.Context) error { _, err := k.ScheduleDeletion(c, 30); return err },
			map[string]int{"ListCryptoKeyVersions": 2, "DestroyCryptoKeyVersion": 2, "GetCryptoKey": 1}},
		{"cancel-deletion (2 versions)", func(c context.Context) error { _, err := k.CancelDeletion(c); return err },
			map[string]int{"ListCryptoKeyVersions": 2, "RestoreCryptoKeyVersion": 2, "GetCryptoKey": 1}},
		{"destroy (2 versions)", func(c context.Context) error { _, err := k.Destroy(c); return err },
			map[string]int{"ListCryptoKeyVersions": 2, "DestroyCryptoKeyVersion": 2, "GetCryptoKey": 1}},
	}
	for _, s := range steps {
		before := snapshot(srv)
		if err := s.run(ctx); err != nil {
			t.Fatalf("%s: %v", s.verb, err)
		}
		after := snapshot(srv)
		for _, m := range methods {
			if got := after[m] - before[m]; got != s.want[m] {
				t.Errorf("%s: %d %s calls, want %d", s.verb, got, m, s.want[m])
			}
		}
	}
}
