package gcpkms

import (
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// TestKeyState covers the derivation of the key's state from its versions.
func TestKeyState(t *testing.T) {
	const (
		E  = kmspb.CryptoKeyVersion_ENABLED
		D  = kmspb.CryptoKeyVersion_DISABLED
		S  = kmspb.CryptoKeyVersion_DESTROY_SCHEDULED
		X  = kmspb.CryptoKeyVersion_DESTROYED
		PG = kmspb.CryptoKeyVersion_PENDING_GENERATION
	)
	vs := func(states ...kmspb.CryptoKeyVersion_CryptoKeyVersionState) []*kmspb.CryptoKeyVersion {
		var out []*kmspb.CryptoKeyVersion
		for _, s := range states {
			out = append(out, &kmspb.CryptoKeyVersion{State: s})
		}
		return out
	}
	for _, c := range []struct {
		name     string
		versions []*kmspb.CryptoKeyVersion
		primary  int // index, -1 none
		want     provider.State
	}{
		{"primary enabled", vs(X, E), 1, provider.StateEnabled},
		{"primary enabled, others scheduled", vs(S, S, E), 2, provider.StateEnabled},
		{"all destroyed", vs(X, X), 1, provider.StateDestroyed},
		{"scheduled and destroyed", vs(X, S), 1, provider.StatePendingDeletion},
		{"all scheduled", vs(S, S), 0, provider.StatePendingDeletion},
		{"primary disabled", vs(E, D), 1, provider.StateDisabled},
		{"primary scheduled, another enabled", vs(E, S), 1, provider.StateDisabled},
		{"disabled and destroyed", vs(X, D), 1, provider.StateDisabled},
		{"no versions", nil, -1, provider.StateDisabled},
		{"primary pending generation", vs(PG), 0, provider.StateDisabled},
	} {
		var p *kmspb.CryptoKeyVersion
		if c.primary >= 0 {
			p = c.versions[c.primary]
		}
		if got := keyState(p, c.versions); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	for s, want := range map[kmspb.CryptoKeyVersion_CryptoKeyVersionState]provider.State{
		E: provider.StateEnabled, D: provider.StateDisabled, S: provider.StatePendingDeletion, X: provider.StateDestroyed,
		kmspb.CryptoKeyVersion_PENDING_EXTERNAL_DESTRUCTION: provider.StatePendingDeletion,
		PG: provider.StateUnknown, kmspb.CryptoKeyVersion_IMPORT_FAILED: provider.StateUnknown,
	} {
		if got := versionState(s); got != want {
			t.Errorf("version state %s: %s, want %s", s, got, want)
		}
	}
}
