package vaulttransit

import (
	"context"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Create makes the key: POST keys/<name> with type aes256-gcm96, neither
// derived nor convergent nor exportable. Creating a key that exists changes
// nothing (Vault's upsert).
func (k *Key) Create(ctx context.Context) (provider.KeyState, error) {
	if _, err := k.write(ctx, "create", k.path("keys"), 0, map[string]any{"type": KeyType}); err != nil {
		return provider.KeyState{}, err
	}
	return k.Describe(ctx)
}

// Rotate makes a new latest version: POST keys/<name>/rotate. Old versions
// keep decrypting; rewrap (or `rotate cmek`) moves ciphertexts to the new one.
func (k *Key) Rotate(ctx context.Context) (provider.KeyState, error) {
	if _, err := k.write(ctx, "rotate", k.path("keys")+"/rotate", 0, nil); err != nil {
		return provider.KeyState{}, err
	}
	return k.Describe(ctx)
}

// noEquivalent is the MISUSE error of an operation Vault transit lacks.
func (k *Key) noEquivalent(op, what string) error {
	return provider.Errorf(providerName, k.where(op), provider.Misuse, "",
		"%s; revoke access with a Vault policy that denies %s/decrypt/%s (and encrypt, rewrap), or raise min_decryption_version with %s/keys/%s/config",
		what, k.mount, k.name, k.mount, k.name)
}

// Disable is not a Vault transit operation: keys have no disabled state.
func (k *Key) Disable(context.Context) (provider.KeyState, error) {
	return provider.KeyState{}, k.noEquivalent("disable", "vault transit has no disable")
}

// Enable is not a Vault transit operation: keys have no disabled state.
func (k *Key) Enable(context.Context) (provider.KeyState, error) {
	return provider.KeyState{}, k.noEquivalent("enable", "vault transit has no enable (keys are never disabled); undo the policy or min_decryption_version that blocks the key")
}

// ScheduleDeletion is not a Vault transit operation: deletion is immediate.
func (k *Key) ScheduleDeletion(context.Context, int) (provider.KeyState, error) {
	return provider.KeyState{}, k.noEquivalent("schedule deletion", "vault transit has no scheduled deletion (destroy deletes at once)")
}

// CancelDeletion is not a Vault transit operation: deletion is immediate.
func (k *Key) CancelDeletion(context.Context) (provider.KeyState, error) {
	return provider.KeyState{}, k.noEquivalent("cancel deletion", "vault transit has no scheduled deletion to cancel")
}

// Destroy deletes the key and every version of it: POST keys/<name>/config
// deletion_allowed=true, then DELETE keys/<name>. The caller asks for typed
// confirmation first. A key that is already gone is StateNotFound, not an
// error, so a drill can be run again.
func (k *Key) Destroy(ctx context.Context) (provider.KeyState, error) {
	st, err := k.Describe(ctx)
	if err != nil {
		return st, err
	}
	if st.State == provider.StateNotFound {
		return st, nil
	}
	if _, err := k.write(ctx, "destroy", k.path("keys")+"/config", 0, map[string]any{"deletion_allowed": true}); err != nil {
		return provider.KeyState{}, err
	}
	if _, err := k.do(ctx, "destroy", 0, func(ctx context.Context) (*api.Secret, error) {
		return k.client.Logical().DeleteWithContext(ctx, k.path("keys"))
	}); err != nil {
		return provider.KeyState{}, err
	}
	return provider.KeyState{URI: k.uri, Provider: providerName, State: provider.StateDestroyed,
		Details: map[string]string{"note": "DELETE " + k.mount + "/keys/" + k.name + " removed every version; only a backup or a storage snapshot could restore it"}}, nil
}
