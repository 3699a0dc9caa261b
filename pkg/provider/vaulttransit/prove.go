package vaulttransit

import (
	"context"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

var _ provider.Prover = (*Key)(nil)

// Identity entries of a Vault transit key.
const (
	IDCluster   = "cluster_id" // sys/health's cluster_id
	IDNamespace = "namespace"
	IDAddress   = "address"
	IDKey       = "key" // <mount>/keys/<name>
)

// place is the Vault cluster and namespace this client reaches.
func (k *Key) place(ctx context.Context) (provider.KeyIdentity, error) {
	var cluster string
	_, err := provider.Retry(ctx, k.retry, func(ctx context.Context) error {
		h, err := k.client.Sys().HealthWithContext(ctx)
		if err != nil {
			return &provider.Error{Provider: providerName, Op: "sys/health", Class: provider.Transient, Message: err.Error(), Err: err}
		}
		cluster = h.ClusterID
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cluster == "" {
		return nil, provider.Errorf(providerName, "sys/health", provider.Misuse, "", "Vault gave no cluster_id (is it initialized?)")
	}
	return provider.KeyIdentity{IDCluster: cluster, IDNamespace: k.client.Namespace(), IDAddress: k.client.Address(),
		IDKey: k.mount + "/keys/" + k.name}, nil
}

// Pin records the Vault cluster (sys/health's cluster_id), the namespace
// and the key's path.
func (k *Key) Pin(ctx context.Context, _ provider.Wrapped) (provider.KeyIdentity, error) {
	return k.place(ctx)
}

// Prove checks that the client reaches the pinned cluster and namespace and
// reads the key. Vault never proves destruction: a deleted transit key reads
// 404 like one that never existed, Vault keeps no tombstone, and
// transit/restore of a backup, or a snapshot of Vault's storage, brings it
// back. The best a Vault key reaches is REVOKED.
func (k *Key) Prove(ctx context.Context, pin provider.KeyIdentity) (provider.Proof, error) {
	p := provider.Proof{State: provider.KeyState{URI: k.uri, Provider: providerName, State: provider.StateUnknown}}
	if pin[IDCluster] == "" {
		p.Reason = "no Vault cluster was pinned when the key wrapped: nothing Vault says can be tied to the key"
		return p, nil
	}
	now, err := k.place(ctx)
	if err != nil {
		return p, err
	}
	if d := provider.SamePlace(pin, now, IDCluster, IDNamespace, IDKey); d != "" {
		p.Mismatch = "asked in the wrong place: " + d
		return p, nil
	}
	st, err := k.Describe(ctx)
	p.State = st
	if err != nil {
		return p, err
	}
	if st.State == provider.StateNotFound {
		p.Reason = "the pinned Vault cluster reads no such key, but Vault keeps no tombstone: transit/restore of a backup or a storage snapshot brings it back"
	} else {
		p.Reason = "the key still exists in the pinned Vault cluster"
	}
	return p, nil
}
