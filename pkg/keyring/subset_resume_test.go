package keyring_test

// BUG (pkg/keyring/ops.go, Rotate, resume path: the loop
// `for _, n := range g.Nodes { if !slices.Contains(j.Nodes, n.Store.Dir) {
// continue } ... }` followed by g.removeJournal): when an interrupted
// rotation is resumed with only some of its keyrings (the journal is in the
// first one by path), the nodes of the journal that are not in the group are
// silently ignored, the rerun reports success, and the journal is removed.
// The missing node stays on the old store-key generation with no journal, and
// from then on every rotation of the region (data-key, store-key, cmek)
// refuses in planRegion with "hold different store-key generations ... and
// no journal: run rotate store-key or rotate cmek again ... to reconcile" —
// advice that the same check refuses: the region is stuck for good.
// Fix: on resume, refuse (or keep the journal) unless every keyring listed
// in j.Nodes is in the group, and name the missing ones.
//
// To enable: rename this file to subset_resume_test.go.

import (
	"context"
	"syscall"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile/faultfs"
)

func TestResumeWithSubsetKeepsJournal(t *testing.T) {
	ctx := context.Background()
	k := newKMS(t)
	c := newCluster(t, k, "cluster-subset", 1, 3)
	env := k.env()
	dirs := c.dirs()
	st := stores(dirs, nil)
	f := faultfs.New()
	f.FailKind(faultfs.Rename, syscall.EIO) // node 3's disk fails
	st[2].FS = f
	g, err := keyring.LoadGroup(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = keyring.Rotate(ctx, env, g, keyring.OpRotateStoreKey, keyring.RotateOptions{})
	g.Close()
	if err == nil {
		t.Fatal("rotation with a failing node reported success")
	}
	// Resumed with two of the three keyrings: must not claim the rotation
	// is finished.
	_, err = rotate(ctx, env, dirs[:2], nil, keyring.OpRotateStoreKey, keyring.RotateOptions{})
	if err == nil && !journalLeft(dirs) {
		t.Fatal("resume with 2 of 3 keyrings succeeded and removed the journal; node 3 is still on the old store key")
	}
	// With all three it finishes.
	if _, err := rotate(ctx, env, dirs, nil, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err != nil {
		t.Fatalf("resume with every keyring: %v", err)
	}
	for _, d := range dirs {
		if g := load(t, d).StoreWrap.Generation; g != 2 {
			t.Fatalf("%s: generation %d, want 2", d, g)
		}
	}
	if _, err := rotate(ctx, env, dirs, nil, keyring.OpRotateDataKey, keyring.RotateOptions{}); err != nil {
		t.Fatalf("next rotation of the region: %v", err)
	}
}
