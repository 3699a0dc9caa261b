package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
)

func newCmdNodeAgent(f *Factory, p func() printer) *cobra.Command {
	var cache string
	var every time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "agent --store URI --cluster-id C --region R --node N --keyring CACHE [--interval 30s] [--once]",
		Short: "Watch a node's keyring in the shared store and purge its key files when it is revoked",
		Long: `node agent is a small loop for a systemd unit or a Kubernetes sidecar: every
--interval it reads the node's keyring from the store: one conditional read,
which on S3 (If-None-Match: ETag) and a directory store transfers nothing while
the keyring is unchanged (304 Not Modified); on etcd a watch wakes it at once.
Once the keyring is revoked it overwrites and removes the store-key files unlock wrote
(as the local cache, --keyring, records them) and acknowledges the purge in the
node's status, which revoke --store --wait-acks waits for. --once makes one pass.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := storeTargetOf(cmd)
			if err != nil {
				return err
			}
			if t.URI == "" || len(t.Regions) != 1 || len(t.Nodes) != 1 || cache == "" {
				return usageError("give --store URI --cluster-id C --region R --node N --keyring CACHE", "node agent watches one node")
			}
			s, err := openStore(cmd.Context(), f, t.URI)
			if err != nil {
				return err
			}
			defer s.Close()
			o := cluster.UnlockOptions{Cluster: t.Cluster, Region: t.Regions[0], Node: t.Nodes[0], Cache: cache, Now: f.Now}
			if once {
				res, err := cluster.AgentOnce(cmd.Context(), s, o)
				if err != nil {
					return err
				}
				return p().print(res, table{Headers: []string{"keyring rev", "revoked", "purged", "acknowledged"},
					Rows: [][]string{{fmt.Sprint(res.KeyringRev), fmt.Sprint(res.Revoked), fmt.Sprint(len(res.Purged)), fmt.Sprint(res.Acked)}}})
			}
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			var last error
			cluster.Agent(ctx, s, o, every, func(res *cluster.AgentResult, err error) {
				if err != nil {
					fmt.Fprintf(f.IO.ErrOut, "cmekctl: node agent: %v\n", err)
				} else if res.Revoked && res.Acked && !res.Unchanged {
					fmt.Fprintf(f.IO.ErrOut, "cmekctl: node agent: keyring revoked; %d key file(s) purged; acknowledged\n", len(res.Purged))
				}
				last = err
			})
			return last
		},
	}
	addStoreFlags(cmd)
	cmd.Flags().String("region", "", "the node's region")
	cmd.Flags().String("node", "", "the node's name")
	cmd.Flags().StringVar(&cache, "keyring", "", "the node's local cache (the --keyring of its unlock --store)")
	cmd.Flags().DurationVar(&every, "interval", 30*time.Second, "how often to read the keyring")
	cmd.Flags().BoolVar(&once, "once", false, "one pass, then exit")
	return cmd
}
