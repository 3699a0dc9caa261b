package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// A region split by rotations of part of it (--partial): a store-key
// rotation of every node reconciles it (one unwrap per distinct bundle, one
// wrap), every node then starts under CockroachDB's rules and reaches the
// one active key, and data sealed before still opens. On the old code the
// reconcile was refused ("different store-key generations").
func TestReconcileSplitRegion(t *testing.T) {
	ctx := context.Background()
	k := newKMS(t)
	c := newCluster(t, k, "c1", 1, 3)
	dirs := c.dirs()
	nodes := newCRDBNodes(t, k, c)
	sealed := map[string][]byte{}
	for _, n := range nodes {
		n.restart("")
		n.confirm()
		sealed[n.dir] = seal(t, k.env(), n.dir, []byte("before "+n.dir), stream.Options{})
	}
	// Node 1 alone, twice (its first new key handed but not confirmed);
	// node 2 alone once: three bundles.
	partial := func(ds ...string) {
		t.Helper()
		if _, err := rotate(ctx, k.env(), ds, nil, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err != nil {
			t.Fatalf("partial rotate store-key: %v", err)
		}
	}
	partial(dirs[0])
	nodes[0].restart("")
	partial(dirs[0])
	partial(dirs[1])
	krs := []*keyring.Keyring{load(t, dirs[0]), load(t, dirs[1]), load(t, dirs[2])}
	if !keyring.Split(krs) {
		t.Fatal("Split: the region's nodes hold one bundle after partial rotations")
	}
	// Every node still starts on its own keyring while the region is split.
	for _, n := range nodes {
		n.restart("")
	}

	// rotate cmek cannot join them: refused before any KMS call, nothing written.
	before := snapshot(t, dirs)
	k.reset()
	_, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateCMEK, keyring.RotateOptions{})
	var se *keyring.SplitRegionError
	if !errors.Is(err, keyring.ErrSplitRegion) || !errors.As(err, &se) || se.Region != "region-1" || len(se.Dirs) != 3 {
		t.Fatalf("rotate cmek of a split region: %v, want a SplitRegionError", err)
	}
	if got := k.total(); got.Unwrap+got.Wrap != 0 {
		t.Fatalf("a refused rotate cmek made %+v KMS calls", got)
	}
	if !bytes.Equal(before, snapshot(t, dirs)) {
		t.Fatal("a refused rotate cmek changed a keyring")
	}
	// A data-key rotation works on a split region: one unwrap per bundle.
	k.reset()
	if _, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateDataKey, keyring.RotateOptions{}); err != nil {
		t.Fatalf("rotate data-key of a split region: %v", err)
	}
	if got := k.total(); got.Unwrap != 3 || got.Wrap != 0 {
		t.Fatalf("rotate data-key of a split region: %+v KMS calls, want 3 unwraps", got)
	}

	// The reconcile: rotate store-key of every node.
	g, err := keyring.LoadGroup(ctx, stores(dirs, nil), false)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := keyring.PlanRotate(g, keyring.OpRotateStoreKey, keyring.RotateOptions{}, k.now())
	if err != nil {
		t.Fatalf("dry run of the reconcile: %v", err)
	}
	k.reset()
	if _, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err != nil {
		t.Fatalf("reconcile (rotate store-key of every node): %v", err)
	}
	if wrap, unwrap := plan.Calls(); k.total().Unwrap != 3 || k.total().Wrap != 1 || wrap != 1 || unwrap != 3 {
		t.Fatalf("reconcile: %+v KMS calls, plan %d wrap %d unwrap; want 3 unwraps (one per bundle) and 1 wrap", k.total(), wrap, unwrap)
	}
	krs = []*keyring.Keyring{load(t, dirs[0]), load(t, dirs[1]), load(t, dirs[2])}
	if keyring.Split(krs) {
		t.Fatal("the region is still split after the reconcile")
	}
	checkRegionsConsistent(t, "after the reconcile", dirs)
	gen := krs[0].StoreWrap.Generation
	for _, kr := range krs {
		if kr.StoreWrap.Generation != gen || kr.StoreWrap.Generation != 4 {
			t.Fatalf("node %s: generation %d, want one generation, 4 (after the newest, 3)", kr.Node, kr.StoreWrap.Generation)
		}
		if err := kr.Validate(); err != nil {
			t.Fatalf("node %s: %v", kr.Node, err)
		}
	}
	active := krs[0].StoreWrap.KeyIDs[0]
	for _, n := range nodes {
		if got, err := open(k.env(), n.dir, sealed[n.dir], stream.Options{}); err != nil || string(got) != "before "+n.dir {
			t.Fatalf("%s: data sealed before the split does not open: %v", n.dir, err)
		}
		// Whatever key each store is on, it starts, and reaches the active key.
		n.restart("")
		n.confirm()
		n.restart("")
		n.confirm()
		if n.activeKey("/mnt/data1") != active {
			t.Fatalf("%s: store on %s, want the region's active key %s", n.dir, keyring.Short(n.activeKey("/mnt/data1")), keyring.Short(active))
		}
	}
	// The next rotation of the region is an ordinary one.
	k.reset()
	rotateStoreKey(t, k, c)
	if _, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateCMEK, keyring.RotateOptions{}); err != nil {
		t.Fatalf("rotate cmek after the reconcile: %v", err)
	}
}

// snapshot is the keyring files' bytes, concatenated.
func snapshot(t *testing.T, dirs []string) []byte {
	t.Helper()
	var out []byte
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, keyring.FileName))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}
