package gcpkms

import (
	"context"
	"slices"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

var _ provider.Prover = (*Key)(nil)

// Identity entries of a Cloud KMS key.
const (
	IDName    = "name"    // projects/P/locations/L/keyRings/R/cryptoKeys/K
	IDVersion = "version" // the full name of the version that wrapped
)

// Pin records the key's full resource name and the version Encrypt named.
// A resource name is global: Cloud KMS answers for that key whoever asks.
func (k *Key) Pin(_ context.Context, w provider.Wrapped) (provider.KeyIdentity, error) {
	return provider.KeyIdentity{IDName: k.name, IDVersion: w.KeyVersion}, nil
}

// Prove describes the key: proof of destruction is Cloud KMS saying the
// pinned version (or, when none was pinned, every version) is DESTROYED and
// none can be imported again. NOT_FOUND and PERMISSION_DENIED are never
// proof: Cloud KMS deletes no key, only versions' material.
func (k *Key) Prove(ctx context.Context, pin provider.KeyIdentity) (provider.Proof, error) {
	p := provider.Proof{State: provider.KeyState{URI: k.uri, Provider: providerName, State: provider.StateUnknown}}
	if pin[IDName] == "" {
		p.Reason = "no resource name was pinned when the key wrapped"
		return p, nil
	}
	if d := provider.SamePlace(pin, provider.KeyIdentity{IDName: k.name}, IDName); d != "" {
		p.Mismatch = "asked about another key: " + d
		return p, nil
	}
	st, err := k.Describe(ctx)
	p.State = st
	if err != nil {
		return p, err
	}
	destroyed := st.State == provider.StateDestroyed
	if v := pin[IDVersion]; v != "" {
		i := slices.IndexFunc(st.Versions, func(vs provider.VersionState) bool { return vs.ID == v })
		destroyed = i >= 0 && st.Versions[i].State == provider.StateDestroyed
	}
	switch {
	case st.State == provider.StateNotFound:
		p.Reason = "Cloud KMS does not find the key (it deletes no key, only versions' material): the name is wrong or not visible to the caller"
	case destroyed && st.Recoverable:
		p.Reason = "destroyed, but recoverable: " + st.RecoverableReason
	case destroyed:
		p.Destroyed = true
		p.Reason = "Cloud KMS says the pinned version's material is DESTROYED and cannot be imported again"
	default:
		p.Reason = "Cloud KMS still holds the pinned version (key " + string(st.State) + ")"
	}
	return p, nil
}
