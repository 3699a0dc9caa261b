package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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
	if len(o.Keyrings) == 0 && f.Config != nil && len(f.Config.Regions) > 0 {
		return enableFromConfig(ctx, f, p, o)
	}
	var missing []string
	for _, fl := range []struct {
		name string
		ok   bool
	}{{"--keyring", len(o.Keyrings) > 0}, {"--node", len(o.Nodes) > 0}, {"--cluster-id", o.ClusterID != ""}, {"--region", o.Region != ""}, {"--cmek", o.CMEK != ""}} {
		if !fl.ok {
			missing = append(missing, fl.name)
		}
	}
	if len(missing) > 0 {
		return usageError("give --keyring/--node pairs, --cluster-id, --region and --cmek, or a cluster config (--config)", "enable needs %s", strings.Join(missing, ", "))
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

// enableFromConfig enables every region of the cluster config (or those of
// --region), in parallel: one wrap per region. A region that is already
// enabled is reported as such; nodes missing from a region join it.
func enableFromConfig(ctx context.Context, f *Factory, p printer, o *EnableOptions) error {
	c := f.Config
	if o.ClusterID != "" && o.ClusterID != c.ClusterID {
		return usageError("drop --cluster-id, or use the config of that cluster", "--cluster-id %q differs from cluster_id %q in %s", o.ClusterID, c.ClusterID, c.Path)
	}
	var regions []string
	if o.Region != "" {
		regions = []string{o.Region}
	}
	sel, err := c.Select(regions, o.Nodes)
	if err != nil {
		return usageError("cmekctl config view lists the cluster's regions and nodes", "%v", err)
	}
	s := f.newSession()
	env := f.env(s)
	var mu sync.Mutex
	rep := enableReport{Op: keyring.OpEnable, ClusterID: c.ClusterID, Region: strings.Join(regions, ","), Nodes: []keyring.NodeResult{}}
	var errs []error
	already := 0
	var wg sync.WaitGroup
	for _, r := range sel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := keyring.EnableRequest{Cluster: c.ClusterID, Region: r.Name, CMEK: r.CMEK}
			for _, n := range r.Nodes {
				req.Nodes = append(req.Nodes, keyring.EnableNode{Store: keyring.Store{Dir: n.Keyring}, Name: n.Name})
			}
			res, err := keyring.Enable(ctx, env, req)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, keyring.ErrAlreadyEnabled) && res == nil {
				already++
				for _, n := range r.Nodes {
					rep.Nodes = append(rep.Nodes, keyring.NodeResult{Dir: n.Keyring, Region: r.Name, Node: n.Name, Action: "already enabled"})
				}
				return
			}
			if res != nil {
				rep.Nodes = append(rep.Nodes, res.Nodes...)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("region %s: %w", r.Name, err))
			}
		}()
	}
	wg.Wait()
	slices.SortStableFunc(rep.Nodes, func(a, b keyring.NodeResult) int { return strings.Compare(a.Region, b.Region) })
	rep.KMSCalls = s.Counts()
	if perr := p.print(rep, nodeTable(rep.Nodes)); perr != nil {
		return perr
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if already == len(sel) {
		return fmt.Errorf("%w in every region selected from %s: nothing was changed", keyring.ErrAlreadyEnabled, c.Path)
	}
	return nil
}
