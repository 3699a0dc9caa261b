package commands

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
)

// enableStoreRun is enable --store: the region's nodes' keyrings created in
// the shared store (one KMS wrap, one create-only write per node).
func enableStoreRun(ctx context.Context, cmd *cobra.Command, f *Factory, p printer, o *EnableOptions) error {
	t, err := storeTargetOf(cmd)
	if err != nil {
		return err
	}
	if len(o.Keyrings) > 0 {
		return usageError("with --store, name nodes with --node only: their keyrings live in the store", "--keyring and --store both given")
	}
	if o.Region == "" || o.CMEK == "" || len(o.Nodes) == 0 {
		return usageError("give --region R, --cmek URI and --node N (repeat)", "enable --store needs a region, a CMEK key and nodes")
	}
	s, err := openStore(ctx, f, t.URI)
	if err != nil {
		return err
	}
	defer s.Close()
	sess := f.newSession()
	res, err := cluster.Enable(ctx, s, f.env(sess), t.Cluster, o.Region, o.CMEK, o.Nodes)
	if res == nil {
		return err
	}
	if perr := p.print(rotateReport{Result: res, KMSCalls: sess.Counts()}, nodeTable(res.Nodes)); perr != nil {
		return perr
	}
	return err
}
