package keyring_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile/faultfs"
)

// The dry-run plan names exactly the KMS calls the operation then makes,
// for fresh rotations and for a resumed one, and changes nothing.
func TestPlanMatchesRotate(t *testing.T) {
	ctx := context.Background()
	k := newKMS(t)
	c := newCluster(t, k, "plan", 2, 3)
	dirs := c.dirs()
	for _, op := range []string{keyring.OpRotateDataKey, keyring.OpRotateStoreKey, keyring.OpRotateCMEK} {
		g, err := keyring.LoadGroup(ctx, stores(dirs, nil), false)
		if err != nil {
			t.Fatal(err)
		}
		before := load(t, dirs[0])
		plan, err := keyring.PlanRotate(g, op, keyring.RotateOptions{}, k.now())
		if err != nil {
			t.Fatal(err)
		}
		if after := load(t, dirs[0]); after.Updated != before.Updated {
			t.Fatal("planning changed a keyring")
		}
		k.reset()
		if _, err := rotate(ctx, k.env(), dirs, nil, op, keyring.RotateOptions{}); err != nil {
			t.Fatal(err)
		}
		wrap, unwrap := plan.Calls()
		if got := k.total(); got.Wrap != int64(wrap) || got.Unwrap != int64(unwrap) {
			t.Fatalf("%s: plan %d wrap %d unwrap, rotation made %d and %d", op, wrap, unwrap, got.Wrap, got.Unwrap)
		}
	}
	// --if-older-than that skips everything: a plan of no calls.
	g, _ := keyring.LoadGroup(ctx, stores(dirs, nil), false)
	plan, _ := keyring.PlanRotate(g, keyring.OpRotateDataKey, keyring.RotateOptions{IfOlderThan: 720 * time.Hour}, k.now())
	if w, u := plan.Calls(); w != 0 || u != 0 {
		t.Fatalf("young keys: plan %d wrap %d unwrap", w, u)
	}
	// A resumed store-key rotation: one unwrap per region with nodes left.
	f := faultfs.New()
	f.FailKind(faultfs.Rename, syscall.EIO)
	st := stores(dirs, nil)
	st[len(st)-1].FS = f // the last node (region 2) fails
	g, err := keyring.LoadGroup(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Rotate(ctx, k.env(), g, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err == nil {
		t.Fatal("no error with a failing node")
	}
	g.Close()
	g, _ = keyring.LoadGroup(ctx, stores(dirs, nil), false)
	plan, err = keyring.PlanRotate(g, keyring.OpRotateStoreKey, keyring.RotateOptions{}, k.now())
	if err != nil || !plan.Resume {
		t.Fatalf("resume plan: %+v %v", plan, err)
	}
	k.reset()
	if _, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	wrap, unwrap := plan.Calls()
	if got := k.total(); wrap != 0 || unwrap != 1 || got.Wrap != 0 || got.Unwrap != 1 {
		t.Fatalf("resume: plan %d wrap %d unwrap, made %d and %d", wrap, unwrap, got.Wrap, got.Unwrap)
	}
}
