package keyring_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// KMS calls per operation, counted by provider.Counting around each region's
// CMEK key: acceptance criteria of the core slice.

func TestKMSCallsPerOperation(t *testing.T) {
	ctx := context.Background()
	for _, nodes := range []int{1, 3, 10} {
		t.Run(fmt.Sprintf("%d nodes per region", nodes), func(t *testing.T) {
			k := newKMS(t)
			c := planCluster(t, k, "cluster-calls", 2, nodes)
			env := k.env()
			expect := func(op string, want provider.Counts) {
				t.Helper()
				for _, r := range c.regions {
					if got := k.counts(r.cmek); got != want {
						t.Errorf("%s, %d nodes: region %s: %+v KMS calls, want %+v", op, nodes, r.name, got, want)
					}
				}
				t.Logf("%s: %+v per region", op, k.counts(c.regions[0].cmek))
				k.reset()
			}

			for _, r := range c.regions {
				if _, err := keyring.Enable(ctx, env, r.request(c.id, nil)); err != nil {
					t.Fatal(err)
				}
			}
			expect("enable", provider.Counts{Wrap: 1})

			if _, err := keyring.Unlock(ctx, env, keyring.Store{Dir: c.regions[0].dirs[0]}, keyring.UnlockOptions{Out: filepath.Join(t.TempDir(), "out"), AllowDisk: true, StorePath: "*"}); err != nil {
				t.Fatal(err)
			}
			if got := k.total(); got != (provider.Counts{Unwrap: 1}) {
				t.Errorf("unlock: %+v KMS calls, want 1 unwrap", got)
			}
			k.reset()

			if _, err := rotate(ctx, env, c.dirs(), nil, keyring.OpRotateDataKey, keyring.RotateOptions{}); err != nil {
				t.Fatal(err)
			}
			expect("rotate data-key", provider.Counts{Unwrap: 1})

			if _, err := rotate(ctx, env, c.dirs(), nil, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err != nil {
				t.Fatal(err)
			}
			expect("rotate store-key", provider.Counts{Unwrap: 1, Wrap: 1})

			if _, err := rotate(ctx, env, c.dirs(), nil, keyring.OpRotateCMEK, keyring.RotateOptions{}); err != nil {
				t.Fatal(err)
			}
			expect("rotate cmek", provider.Counts{Unwrap: 1, Wrap: 1})

			// rotate cmek to a new key: 1 unwrap under the old, 1 wrap under the new.
			if nodes == 1 {
				r := c.regions[0]
				newURI := k.create(t, "replacement")
				if _, err := rotate(ctx, env, r.dirs, nil, keyring.OpRotateCMEK, keyring.RotateOptions{NewCMEK: newURI}); err != nil {
					t.Fatal(err)
				}
				if o, n := k.counts(r.cmek), k.counts(newURI); o != (provider.Counts{Unwrap: 1}) || n != (provider.Counts{Wrap: 1}) {
					t.Errorf("rotate cmek --cmek NEW: old key %+v, new key %+v", o, n)
				}
				if load(t, r.dirs[0]).StoreWrap.CMEKURI != newURI {
					t.Error("rotate cmek --cmek NEW did not switch the key")
				}
				r.cmek = newURI // the region's key from now on
				k.reset()
			}

			// Every data key is young: a cron run with --if-older-than skips
			// everything and calls no KMS.
			res, err := rotate(ctx, env, c.dirs(), nil, keyring.OpRotateDataKey, keyring.RotateOptions{IfOlderThan: 720 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if got := k.total(); got != (provider.Counts{}) {
				t.Errorf("rotate data-key --if-older-than skipping all: %+v KMS calls, want 0", got)
			}
			for _, n := range res.Nodes {
				if n.Action != "skipped" {
					t.Errorf("node %s: %s, want skipped", n.Node, n.Action)
				}
			}
			if len(res.Nodes) != len(c.dirs()) || journalLeft(c.dirs()) {
				t.Errorf("skip-all: %d results, journal left %v", len(res.Nodes), journalLeft(c.dirs()))
			}
			// 31 days later they are due: 1 unwrap per region again.
			k.advance(31 * 24 * time.Hour)
			if _, err := rotate(ctx, env, c.dirs(), nil, keyring.OpRotateDataKey, keyring.RotateOptions{IfOlderThan: 720 * time.Hour}); err != nil {
				t.Fatal(err)
			}
			expect("rotate data-key --if-older-than 720h, due", provider.Counts{Unwrap: 1})
		})
	}
}
