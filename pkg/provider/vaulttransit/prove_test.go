package vaulttransit_test

import (
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// TestWrongVaultIsNeverDestroyed: a key wrapped on one Vault, then asked
// about on another (the same address now serving another cluster, or
// VAULT_ADDR pointing elsewhere), reads 404 there. The unwrap is REVOKED,
// never DESTROYED, and Prove reports the cluster mismatch. Today's rule
// (404 on the key read: DESTROYED) fails it.
func TestWrongVaultIsNeverDestroyed(t *testing.T) {
	a, b := startServer(t), startServer(t)
	k := newKey(t, a)
	w := wrapOrFatal(t, k, testAAD)
	pin, err := k.Pin(ctxT(t), w)
	if err != nil || pin[vaulttransit.IDCluster] == "" || pin[vaulttransit.IDKey] != "transit/keys/"+k.Name() {
		t.Fatalf("pin: %v %v", pin, err)
	}
	other := vaulttransit.New(b.Client(t), "transit", k.Name()).WithRetry(fastRetry)
	_, err = other.Unwrap(ctxT(t), w, testAAD)
	if c := provider.Classify(err); c != provider.Revoked {
		t.Fatalf("unwrap on another Vault: %v (class %s), want REVOKED", err, c)
	}
	pr, err := other.Prove(ctxT(t), pin)
	if err != nil || pr.Destroyed || !strings.Contains(pr.Mismatch, "cluster_id") {
		t.Fatalf("prove on another Vault: %+v %v", pr, err)
	}
	// Another key path on the pinned cluster is a mismatch too.
	pr, err = vaulttransit.New(a.Client(t), "transit", "other").WithRetry(fastRetry).Prove(ctxT(t), pin)
	if err != nil || pr.Destroyed || !strings.Contains(pr.Mismatch, "key") {
		t.Fatalf("prove of another key: %+v %v", pr, err)
	}
	// Deleted on the pinned cluster: still no proof (transit/restore).
	if _, err := k.Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pr, err = k.Prove(ctxT(t), pin)
	if err != nil || pr.Destroyed || pr.Mismatch != "" || pr.State.State != provider.StateNotFound || !strings.Contains(pr.Reason, "restore") {
		t.Fatalf("prove of a deleted key: %+v %v", pr, err)
	}
}
