package keyring_test

// BUG (pkg/keyring/ops.go, Enable): an enable of several nodes that fails
// part way (crash, ENOSPC, EIO on one node's write) cannot be finished.
// Running the same command again fails with ErrAlreadyEnabled (ops.go, the
// n.Store.Exists() check in Enable's first loop), and following the error's
// advice ("run enable for them") enables the missing nodes under a NEW store
// key: the region then holds two store-key lineages of the same generation,
// and the next rotate data-key / store-key over the region fails for the
// nodes of the second lineage ("active store key ... is not in the region's
// bundle"). Enable has no intent journal, unlike Rotate.
//
// To enable: rename this file to enable_resume_test.go.

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile/faultfs"
)

func partlyEnabled(t *testing.T) (*kms, *cluster) {
	ctx := context.Background()
	k := newKMS(t)
	c := planCluster(t, k, "cluster-resume", 1, 3)
	f := faultfs.New()
	f.FailNth(faultfs.Rename, 3, syscall.EIO) // one of the three nodes fails
	_, err := keyring.Enable(ctx, k.env(), c.regions[0].request(c.id, f))
	if !errors.Is(err, keyring.ErrPartial) {
		t.Fatalf("enable with one failing node: %v, want ErrPartial", err)
	}
	return k, c
}

func TestEnableResumeSameCommand(t *testing.T) {
	k, c := partlyEnabled(t)
	ctx := context.Background()
	// Running the same command again finishes the region.
	if _, err := keyring.Enable(ctx, k.env(), c.regions[0].request(c.id, nil)); err != nil {
		t.Fatalf("enable again after a partial enable: %v", err)
	}
	checkRegionsConsistent(t, "after resumed enable", c.dirs())
}

func TestEnableResumeAsAdvised(t *testing.T) {
	k, c := partlyEnabled(t)
	ctx := context.Background()
	rg := c.regions[0]
	// The error advises running the same command again; nodes that exist
	// are reported, the missing one joins the region's store key.
	res, err := keyring.Enable(ctx, k.env(), keyring.EnableRequest{Cluster: c.id, Region: rg.name, CMEK: rg.cmek, Nodes: rg.request(c.id, nil).Nodes})
	if err != nil {
		t.Fatalf("enable again: %v", err)
	}
	if !res.Resumed {
		t.Fatal("the rerun did not say it resumed")
	}
	checkRegionsConsistent(t, "after enabling the missing node", c.dirs())
	if _, err := rotate(ctx, k.env(), c.dirs(), nil, keyring.OpRotateDataKey, keyring.RotateOptions{}); err != nil {
		t.Fatalf("rotate data-key over the region: %v", err)
	}
	// A third run changes nothing.
	if _, err := keyring.Enable(ctx, k.env(), rg.request(c.id, nil)); !errors.Is(err, keyring.ErrAlreadyEnabled) {
		t.Fatalf("enable of a fully enabled region: %v", err)
	}
}
