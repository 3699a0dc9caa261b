package commands

import (
	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
)

func newCmdStoreUnlock(f *Factory, p func() printer) *cobra.Command {
	var force, uri, cid string
	cmd := &cobra.Command{
		Use:   "unlock --store URI --cluster-id C --force TOKEN",
		Short: "Release an operator lease whose holder is known to be dead",
		Long: `store unlock --force TOKEN releases the cluster's operator lease if its token is
TOKEN (exit 9 messages name it), as Terraform's force-unlock does: for a
holder known to be dead that the lease's TTL has not yet let go. A lease with
another token is left as it is. The lease only avoids duplicate work: the
store's compare-and-swap keeps the keyrings safe either way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if force == "" || uri == "" || cid == "" {
				return usageError("give --store URI --cluster-id C --force TOKEN", "store unlock needs the store, the cluster and the lease's token")
			}
			s, err := openStore(cmd.Context(), f, uri)
			if err != nil {
				return err
			}
			defer s.Close()
			l, err := cluster.ForceRelease(cmd.Context(), s, cid, force)
			if err != nil {
				return err
			}
			return p().print(l, table{Headers: []string{"released", "holder", "op", "acquired"},
				Rows: [][]string{{l.Token, l.Holder, l.Op, p().when(l.Acquired)}}})
		},
	}
	cmd.Flags().StringVar(&force, "force", "", "the token of the lease to release")
	cmd.Flags().StringVar(&uri, "store", "", "the cluster's shared keyring store URI")
	cmd.Flags().StringVar(&cid, "cluster-id", "", "the cluster ID")
	return cmd
}
