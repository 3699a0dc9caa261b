package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/keyring"
)

type unlockStoreReport struct {
	*cluster.UnlockResult
	KMSCalls KMSCalls `json:"kms_calls"`
}

// unlockStoreRun is unlock --store: a node's start from the shared store.
func unlockStoreRun(ctx context.Context, cmd *cobra.Command, f *Factory, p printer, o *UnlockOptions) error {
	t, err := storeTargetOf(cmd)
	if err != nil {
		return err
	}
	if len(t.Regions) != 1 || len(t.Nodes) != 1 {
		return usageError("name the node: --region R --node N", "unlock --store starts one node")
	}
	maxStale, _ := cmd.Flags().GetDuration("max-stale")
	cache := o.Keyring
	if cache == "" {
		base := f.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "cmekctl", t.Cluster, t.Regions[0], t.Nodes[0])
	}
	s, err := openStore(ctx, f, t.URI)
	if err != nil {
		return err
	}
	defer s.Close()
	sess := f.newSession()
	env := f.env(sess)
	res, err := cluster.Unlock(ctx, s, env, cluster.UnlockOptions{
		Cluster: t.Cluster, Region: t.Regions[0], Node: t.Nodes[0], Cache: cache, MaxStale: maxStale, Now: f.Now,
		Unlock: keyring.UnlockOptions{Out: o.Out, Format: o.Format, AllowDisk: o.AllowDisk,
			StorePaths: o.StorePaths, RotationPeriod: o.RotationPeriod, SpecFile: o.SpecFile},
	})
	if err != nil {
		return err
	}
	if res.FromCache {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: warning: the store did not answer; started from the local cache %s, read from the store %s ago (--max-stale %s)\n", cache, res.CacheAge, maxStale)
	}
	if res.StatusErr != "" {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: warning: the node started, but its status could not be written to the store: %s\n", res.StatusErr)
	}
	return printUnlock(f, p, res.UnlockResult, o.Format, unlockStoreReport{UnlockResult: res, KMSCalls: sess.Counts()})
}

func addUnlockStoreFlags(cmd *cobra.Command) {
	addStoreFlags(cmd)
	cmd.Flags().Duration("max-stale", cluster.DefaultMaxStale, "with --store: when the store does not answer, start from the local cache (--keyring) only if it was read from the store less than this long ago")
}
