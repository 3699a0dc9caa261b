package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// rotateStoreRun is rotate --store: the intent protocol over every node the
// store lists for the cluster (narrowed by --region/--node).
func rotateStoreRun(ctx context.Context, cmd *cobra.Command, f *Factory, p printer, o *RotateOptions) error {
	t, err := storeTargetOf(cmd)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, f, t.URI)
	if err != nil {
		return err
	}
	defer s.Close()
	if o.DryRun {
		plan, err := cluster.PlanRotate(ctx, s, cluster.RotateOptions{Cluster: t.Cluster, Regions: t.Regions, Nodes: t.Nodes, Op: o.Op,
			Rotate: keyring.RotateOptions{IfOlderThan: o.IfOlderThan, NewCMEK: o.CMEK}}, f.Now().UTC())
		if err != nil {
			return err
		}
		return printPlan(p, plan)
	}
	ttl, _ := cmd.Flags().GetDuration("lease-ttl")
	wait, _ := cmd.Flags().GetDuration("lease-wait")
	sess := f.newSession()
	res, err := cluster.Rotate(ctx, s, f.env(sess), cluster.RotateOptions{
		Cluster: t.Cluster, Regions: t.Regions, Nodes: t.Nodes, Op: o.Op, By: operator(),
		Rotate: keyring.RotateOptions{IfOlderThan: o.IfOlderThan, NewCMEK: o.CMEK},
		Lease:  cluster.LeaseOptions{TTL: ttl, Wait: wait, Holder: operator(), Now: f.Now},
	})
	if res == nil {
		return err
	}
	if res.Resumed {
		fmt.Fprintf(f.IO.ErrOut, "resuming interrupted %s %s\n", res.Op, res.OpID)
	}
	if perr := p.print(rotateReport{Result: res, KMSCalls: sess.Counts()}, nodeTable(res.Nodes)); perr != nil {
		return perr
	}
	return err
}

// addLeaseFlags are the operator lease's flags of the store-form verbs.
func addLeaseFlags(cmd *cobra.Command) {
	cmd.Flags().Duration("lease-ttl", cluster.DefaultLeaseTTL, "with --store: the operator lease's TTL (renewed every third of it; a lease unchanged for a whole TTL is taken over)")
	cmd.Flags().Duration("lease-wait", 0*time.Second, "with --store: how long to wait for another operator's lease before exit 9")
}
