package filekms

import (
	"context"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

var _ provider.Prover = (*Key)(nil)

// Identity entries of a file-kms key.
const (
	IDPath    = "path"
	IDCreated = "created" // the key's creation time: a key made again at the same path is another key
)

// Pin records the key file's path and the key's creation time.
func (k *Key) Pin(_ context.Context, _ provider.Wrapped) (provider.KeyIdentity, error) {
	st, err := k.load("pin")
	if err != nil {
		return nil, err
	}
	return provider.KeyIdentity{IDPath: k.path(), IDCreated: st.Created.UTC().Format(time.RFC3339Nano)}, nil
}

// Prove reads the pinned key file: destroyed and not recoverable is proof;
// a missing file is not (the key may be elsewhere, or restored from a copy),
// and a key created again at the same path is another key.
func (k *Key) Prove(ctx context.Context, pin provider.KeyIdentity) (provider.Proof, error) {
	p := provider.Proof{State: provider.KeyState{URI: k.uri, Provider: Scheme, State: provider.StateUnknown}}
	if pin[IDPath] == "" {
		p.Reason = "no key file was pinned when the key wrapped"
		return p, nil
	}
	if d := provider.SamePlace(pin, provider.KeyIdentity{IDPath: k.path()}, IDPath); d != "" {
		p.Mismatch = "asked about another key file: " + d
		return p, nil
	}
	st, err := k.Describe(ctx)
	p.State = st
	if err != nil {
		return p, err
	}
	if st.State == provider.StateNotFound {
		p.Reason = "no key file at the pinned path: not proof (the key may have been moved, or be restored from a copy)"
		return p, nil
	}
	if created := st.Details[IDCreated]; created != pin[IDCreated] {
		p.Mismatch = "the key file at the pinned path is another key: created " + created + ", pinned " + pin[IDCreated]
		return p, nil
	}
	switch {
	case st.State == provider.StateDestroyed && st.Recoverable:
		p.Reason = "destroyed, but recoverable: " + st.RecoverableReason
	case st.State == provider.StateDestroyed:
		p.Destroyed = true
		p.Reason = "file-kms says the pinned key's material is destroyed"
	default:
		p.Reason = "file-kms still holds the key (" + string(st.State) + ")"
	}
	return p, nil
}
