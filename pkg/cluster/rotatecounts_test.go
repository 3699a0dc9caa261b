package cluster_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// Rotations: KMS calls per region as today; store requests <= 2 per node
// plus a few per operation.
func TestRotateCounts(t *testing.T) {
	f := enabled(t, 5, "r1", "r2", "r3")
	for _, op := range []string{keyring.OpRotateStoreKey, keyring.OpRotateDataKey, keyring.OpRotateCMEK} {
		f.kms.reset()
		f.st.reset()
		res, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, op))
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		k := f.kms.total()
		wantWrap := int64(3)
		if op == keyring.OpRotateDataKey {
			wantWrap = 0
		}
		if k.Unwrap != 3 || k.Wrap != wantWrap {
			t.Fatalf("%s: KMS %+v, want 3 unwraps, %d wraps", op, k, wantWrap)
		}
		// A store-key rotation of a one-key bundle reads no status: no
		// key could be dropped (TestRotateCountsStoreKey: later ones).
		if n := f.st.total(); n > 2*15+8 {
			t.Fatalf("%s: %d store requests for 15 nodes (%v), want <= 2 per node + 8", op, n, f.st.counts())
		}
		for _, r := range res.Nodes {
			if r.Action != "rotated" {
				t.Fatalf("%s: %+v", op, r)
			}
		}
	}
	// A node unlocks on the new store key.
	res, err := f.unlock(t, t.TempDir(), "r2", "r2-n3")
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := cluster.ReadKeyring(context.Background(), f.st, "c1", "r2", "r2-n3")
	if res.StoreKey != kr.ActiveStoreKey().ID || kr.StoreWrap.Generation != 3 {
		t.Fatalf("unlocked %s, keyring active %s gen %d", res.StoreKey, kr.ActiveStoreKey().ID, kr.StoreWrap.Generation)
	}
}

// Store-key rotations at 2 store requests per node plus O(regions): once
// every node has restarted on the active key and confirmed (node started),
// its retired-key markers say it is off the old keys, and the rotation
// reads no status; the old key is dropped. A node that misses its restart
// has no marker for the key it runs on: only its status is read, and that
// key is kept, so it still starts.
func TestRotateCountsStoreKey(t *testing.T) {
	ctx := context.Background()
	f := enabled(t, 5, "r1", "r2", "r3")
	hosts := map[string]string{}
	start := func(r, n string) {
		t.Helper()
		if hosts[n] == "" {
			hosts[n] = t.TempDir()
		}
		f.startConfirmed(t, hosts[n], r, n)
	}
	startAll := func(skip string) {
		for r, nodes := range f.nodes {
			for _, n := range nodes {
				if n != skip {
					start(r, n)
				}
			}
		}
	}
	rotateKey := func() {
		t.Helper()
		f.st.reset()
		if _, err := cluster.Rotate(ctx, f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey)); err != nil {
			t.Fatal(err)
		}
	}
	bundle := func(r, n string) []string {
		kr, err := cluster.ReadKeyring(ctx, f.st, "c1", r, n)
		if err != nil {
			t.Fatal(err)
		}
		return kr.StoreWrap.KeyIDs
	}
	startAll("")
	rotateKey() // one key in the bundle: no status read
	startAll("")
	rotateKey()
	t.Logf("store-key rotation, every node confirmed: %d requests for 15 nodes %v", f.st.total(), f.st.counts())
	if c := f.st.counts(); f.st.total() > 2*15+3+8 || c["get"] > 15+2 {
		t.Fatalf("store-key rotation after every node confirmed: %d requests %v, want <= 2 per node + 3 marker lists + 8", f.st.total(), c)
	}
	if b := bundle("r1", "r1-n1"); len(b) != 2 {
		t.Fatalf("bundle of %d keys after every node left the old key, want 2 (active, previous)", len(b))
	}
	// r2-n3 misses its restart: it is still on the previous key.
	startAll("r2-n3")
	behind := bundle("r2", "r2-n3")[1] // the previous key, which it last started on
	rotateKey()
	t.Logf("store-key rotation, one node behind: %d requests for 15 nodes %v", f.st.total(), f.st.counts())
	if c := f.st.counts(); f.st.total() > 2*15+1+3+8 || c["get"] > 15+1+2 {
		t.Fatalf("store-key rotation with one node behind: %d requests %v, want <= 2 per node + its status + 3 lists + 8", f.st.total(), c)
	}
	if b := bundle("r2", "r2-n1"); len(b) != 3 || b[2] != behind {
		t.Fatalf("r2's bundle %v: want the key r2-n3 runs on (%s) kept", b, behind)
	}
	if b := bundle("r1", "r1-n1"); len(b) != 2 {
		t.Fatalf("r1's bundle has %d keys, want 2", len(b))
	}
	start("r2", "r2-n3") // it still starts, on the new key
	if kr, _ := cluster.ReadKeyring(ctx, f.st, "c1", "r2", "r2-n3"); kr.StoreWrap.Generation != 4 {
		t.Fatalf("generation %d", kr.StoreWrap.Generation)
	}
}

// A host with an empty cache (a rescheduled pod) of a node that has
// published its stores: its start reads its keyring and its own status
// (their records, the status version) and replaces the status: 3 requests,
// no failed create; the store it runs on is handed as old-key.
func TestUnlockFreshCacheCounts(t *testing.T) {
	ctx := context.Background()
	f := enabled(t, 1, "r1")
	f.startConfirmed(t, t.TempDir(), "r1", "r1-n1")
	if _, err := cluster.Rotate(ctx, f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey)); err != nil {
		t.Fatal(err)
	}
	f.st.reset()
	res, err := f.unlock(t, t.TempDir(), "r1", "r1-n1")
	if err != nil {
		t.Fatal(err)
	}
	if c := f.st.counts(); c["get"] != 2 || c["replace"] != 1 || c["create"] != 0 {
		t.Fatalf("start with an empty cache: %v, want 2 gets (keyring, status) and 1 replace", c)
	}
	if res.OldKey == "" {
		t.Fatalf("start with an empty cache after a rotation: no old-key handed (%+v)", res.UnlockResult)
	}
}

// A host with an empty cache after rotations that read no status (so the
// keyring holds no copy of the node's records): its start reads the
// node's status and hands the key its store runs on as old-key.
func TestUnlockFreshCacheOldKey(t *testing.T) {
	ctx := context.Background()
	f := enabled(t, 1, "r1")
	host := t.TempDir()
	start := func() { f.startConfirmed(t, host, "r1", "r1-n1") }
	rotateKey := func() {
		t.Helper()
		if _, err := cluster.Rotate(ctx, f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey)); err != nil {
			t.Fatal(err)
		}
	}
	start()
	rotateKey()
	start() // on the second key, confirmed: a marker for the first
	on := func() string {
		kr, err := cluster.ReadKeyring(ctx, f.st, "c1", "r1", "r1-n1")
		if err != nil {
			t.Fatal(err)
		}
		return kr.StoreWrap.KeyIDs[0]
	}()
	rotateKey()
	kr, _ := cluster.ReadKeyring(ctx, f.st, "c1", "r1", "r1-n1")
	if len(kr.Stores) != 0 || len(kr.StoreWrap.KeyIDs) != 2 || kr.StoreWrap.KeyIDs[1] != on {
		t.Fatalf("keyring records %v, bundle %v: want no copy of the records and the bundle (new, %s)", kr.Stores, kr.StoreWrap.KeyIDs, on)
	}
	res, err := f.unlock(t, t.TempDir(), "r1", "r1-n1")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stores) != 1 || res.Stores[0].OldKeyID != on || res.Stores[0].KeyID != kr.StoreWrap.KeyIDs[0] {
		t.Fatalf("start with an empty cache handed %+v: want key %s and old-key %s (the key the store runs on)", res.Stores, kr.StoreWrap.KeyIDs[0], on)
	}
}

// startConfirmed is a node's start on host and its confirmation (node
// started --store): unlock, the stores recorded as started, the records
// published in the status (and the retired-key markers written).
func (f *fixture) startConfirmed(t *testing.T, host, r, n string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.unlock(t, host, r, n); err != nil {
		t.Fatalf("%s: %v", n, err)
	}
	cache := filepath.Join(host, "cache")
	if _, err := keyring.NodeStarted(ctx, f.kms.env(), keyring.Store{Dir: cache}, keyring.StartedOptions{}); err != nil {
		t.Fatalf("%s: node started: %v", n, err)
	}
	if err := cluster.PublishStores(ctx, f.st, cluster.UnlockOptions{Cluster: "c1", Region: r, Node: n, Cache: cache}); err != nil {
		t.Fatalf("%s: publish: %v", n, err)
	}
}
