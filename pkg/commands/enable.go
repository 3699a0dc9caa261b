package commands

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// EnableOptions are enable's options.
type EnableOptions struct {
	Keyrings  []string
	Nodes     []string
	ClusterID string
	Region    string
	CMEK      string
	Cloud     CloudOptions
}

func newCmdEnable(f *Factory, p func() printer) *cobra.Command {
	opts := &EnableOptions{}
	cmd := &cobra.Command{
		Use:   "enable --keyring DIR --node N [--keyring DIR --node N]... --cluster-id ID --region R --cmek URI",
		Short: "Enable CMEK for the nodes of a region",
		Long: `Enable CMEK for the nodes of one region: a new store key, wrapped by the
region's CMEK key (one KMS wrap), and for each node a keyring with a fresh data
key wrapped by the store key. Give --keyring and --node in pairs, one pair per
node. A keyring that is already enabled is refused and left as it is.

Enabling CMEK leaves existing data as it is; it protects newly written data.`,
		Example: `  cmekctl kms create file-kms:///var/lib/cmekctl/kms/cluster1
  cmekctl enable --cluster-id c1 --region us-east1 --cmek file-kms:///var/lib/cmekctl/kms/cluster1 \
    --keyring /var/lib/cockroach/n1/cmek --node n1 --keyring /var/lib/cockroach/n2/cmek --node n2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return enableRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringArrayVar(&opts.Keyrings, "keyring", nil, "keyring directory of a node (repeat, paired with --node)")
	cmd.Flags().StringArrayVar(&opts.Nodes, "node", nil, "node name (repeat, paired with --keyring)")
	cmd.Flags().StringVar(&opts.ClusterID, "cluster-id", "", "cluster ID")
	cmd.Flags().StringVar(&opts.Region, "region", "", "region of the nodes")
	cmd.Flags().StringVar(&opts.CMEK, "cmek", "", "URI of the region's CMEK key")
	for _, fl := range []string{"keyring", "node", "cluster-id", "region", "cmek"} {
		_ = cmd.MarkFlagRequired(fl)
	}
	_ = cmd.MarkFlagDirname("keyring")
	addCloudFlags(f, cmd, &opts.Cloud, cloudSpecs, cloudHelp["enable"], "keyring", "node", "region", "cmek")
	return cmd
}

type enableReport struct {
	Op        string               `json:"op"`
	ClusterID string               `json:"cluster_id"`
	Region    string               `json:"region"`
	CMEK      string               `json:"cmek_uri"`
	Nodes     []keyring.NodeResult `json:"nodes"`
	KMSCalls  KMSCalls             `json:"kms_calls"`
}

func enableRun(ctx context.Context, f *Factory, p printer, o *EnableOptions) error {
	if o.Cloud.Cloud {
		o.Cloud.ClusterID = o.ClusterID
		return cloudEnableRun(ctx, f, p, &o.Cloud)
	}
	if len(o.Keyrings) != len(o.Nodes) {
		return usageError("give one --node per --keyring, in the same order", "%d --keyring and %d --node flags", len(o.Keyrings), len(o.Nodes))
	}
	req := keyring.EnableRequest{Cluster: o.ClusterID, Region: o.Region, CMEK: o.CMEK}
	for i, dir := range o.Keyrings {
		req.Nodes = append(req.Nodes, keyring.EnableNode{Store: keyring.Store{Dir: dir}, Name: o.Nodes[i]})
	}
	s := f.newSession()
	res, err := keyring.Enable(ctx, f.env(s), req)
	if res == nil {
		return err
	}
	rep := enableReport{Op: res.Op, ClusterID: o.ClusterID, Region: o.Region, CMEK: redact(o.CMEK), Nodes: res.Nodes, KMSCalls: s.Counts()}
	if perr := p.print(rep, nodeTable(res.Nodes)); perr != nil {
		return perr
	}
	return err
}

func nodeTable(nodes []keyring.NodeResult) table {
	t := table{Headers: []string{"region", "node", "keyring", "result", "detail"}}
	for _, n := range nodes {
		d := n.Detail
		if n.Error != "" {
			d = n.Error
		}
		t.Rows = append(t.Rows, []string{n.Region, n.Node, n.Dir, n.Action, d})
	}
	return t
}
