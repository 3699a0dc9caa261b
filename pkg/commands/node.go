package commands

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// NodeAddOptions are node add's options.
type NodeAddOptions struct {
	Region  string
	Node    string
	Keyring string
	From    string
	DryRun  bool
}

func newCmdNode(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Add a node to an enabled region; confirm a node's start"}
	o := &NodeAddOptions{}
	add := &cobra.Command{
		Use:   "add --region R --node N --keyring DIR [--from DIR]",
		Short: "A new node joins its region: the region's store key and a fresh data key",
		Long: `A new node joins a region that is already enabled: its keyring gets the
region's wrapped store keys and a fresh data key (one KMS unwrap, no wrap).
The region's store keys come from --from (a keyring of a node of that region)
or from the cluster config's nodes of the region.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return nodeAddRun(cmd.Context(), f, p(), cmd.Root(), o) },
	}
	add.Flags().StringVar(&o.Region, "region", "", "the node's region")
	add.Flags().StringVar(&o.Node, "node", "", "the node's name")
	add.Flags().StringVar(&o.Keyring, "keyring", "", "the new node's keyring directory")
	add.Flags().StringVar(&o.From, "from", "", "a keyring of an enabled node of the region (default: from the cluster config)")
	add.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan and the KMS calls (one unwrap); change nothing")
	for _, n := range []string{"region", "node", "keyring"} {
		_ = add.MarkFlagRequired(n)
	}
	cmd.AddCommand(add, newCmdNodeStarted(f, p), newCmdNodeAgent(f, p))
	return cmd
}

func nodeAddRun(ctx context.Context, f *Factory, p printer, root *cobra.Command, o *NodeAddOptions) error {
	var srcDirs []string
	if o.From != "" {
		srcDirs = []string{o.From}
	} else if f.Config != nil {
		if r, ok := f.Config.Region(o.Region); ok {
			for _, n := range r.Nodes {
				if n.Keyring != o.Keyring {
					srcDirs = append(srcDirs, n.Keyring)
				}
			}
		}
	}
	if len(srcDirs) == 0 {
		return usageError("pass --from DIR, a keyring of an enabled node of the region, or a cluster config", "no enabled node of region %q to copy the store key from", o.Region)
	}
	var src *keyring.Keyring
	var lastErr error
	for _, d := range srcDirs {
		kr, err := f.store(d).Load()
		if err != nil {
			lastErr = err
			continue
		}
		if src == nil || kr.StoreWrap.Generation > src.StoreWrap.Generation {
			src = kr
		}
	}
	if src == nil {
		return lastErr
	}
	if src.Region != o.Region {
		return exitf(ExitForeign, "%s is a keyring of region %q, not %q", srcDirs[0], src.Region, o.Region)
	}
	if o.DryRun {
		action, detail := keyring.WouldEnable, "joins the region's store key"
		if (keyring.Store{Dir: o.Keyring}).Exists() {
			action, detail = keyring.WouldSkip, "already enabled"
		}
		return printPlan(p, &keyring.Plan{Op: "node add",
			Regions: []keyring.PlanRegion{{Region: src.Region, CMEK: src.StoreWrap.CMEKURI, Unwrap: 1}},
			Nodes:   []keyring.PlanNode{{Dir: o.Keyring, Region: src.Region, Node: o.Node, Action: action, Detail: detail}}})
	}
	s := f.newSession()
	res, err := keyring.AddNodes(ctx, f.env(s), src, []keyring.EnableNode{{Store: f.store(o.Keyring), Name: o.Node}})
	if res == nil {
		return err
	}
	if err == nil {
		// Config-driven verbs must see the node from now on, or the next
		// rotation of the region leaves it behind.
		recorded, rerr := recordNode(f, root, src.Region, o.Node, o.Keyring)
		if rerr != nil {
			return &ExitError{Code: ExitFailure, Err: fmt.Errorf("node %s is enabled, but the cluster config was not updated: %w", o.Node, rerr),
				Hint: fmt.Sprintf("add {name: %s, keyring: %s} to region %s's nodes in %s by hand", o.Node, o.Keyring, src.Region, f.Config.Path)}
		}
		if recorded && p.text() {
			fmt.Fprintf(f.IO.ErrOut, "node %s recorded in region %s of %s\n", o.Node, src.Region, f.Config.Path)
		}
	}
	if perr := p.print(enableReport{Op: "node add", ClusterID: src.ClusterID, Region: src.Region, CMEK: redact(src.StoreWrap.CMEKURI), Nodes: res.Nodes, KMSCalls: s.Counts()}, nodeTable(res.Nodes)); perr != nil {
		return perr
	}
	return err
}

// RegionAddOptions are region add's options.
type RegionAddOptions struct {
	Region        string
	CMEK          string
	AuthPrincipal string
	Nodes         []string
	Keyrings      []string
	// Cloud: region add --cloud, through the Cloud API (cloudregionadd.go).
	Cloud CloudOptions
}

func newCmdRegion(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{Use: "region", Short: "Add a region to the cluster config, or to a Cloud cluster (--cloud)"}
	o := &RegionAddOptions{}
	add := &cobra.Command{
		Use:   "add --region R (--cmek URI [--node N --keyring DIR]... | --cloud --cluster-id ID --nodes N --region-key R=URI)",
		Short: "Add a region to the cluster config; it is NOT protected until enable --region R",
		Long: `Add a region, its CMEK key and its nodes to the cluster config file. A region
added after enabling is not protected: status reports it so until you run
cmekctl enable --region R for it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Cloud.Cloud {
				return cloudRegionAddRun(cmd.Context(), f, p(), &o.Cloud, o.Region, o.AuthPrincipal)
			}
			return regionAddRun(f, p(), cmd.Root(), o)
		},
	}
	add.Flags().StringVar(&o.Region, "region", "", "the region's name")
	add.Flags().StringVar(&o.CMEK, "cmek", "", "the region's CMEK key URI")
	addRecordedURIFileFlag(add, "cmek")
	add.Flags().StringVar(&o.AuthPrincipal, "auth-principal", "", "the Cloud's auth principal for the key (IAM role ARN or service account); with --cloud, REGION=PRINCIPAL or PRINCIPAL")
	add.Flags().StringArrayVar(&o.Nodes, "node", nil, "a node of the region (repeat, paired with --keyring)")
	add.Flags().StringArrayVar(&o.Keyrings, "keyring", nil, "the node's keyring directory (repeat, paired with --node)")
	_ = add.MarkFlagRequired("region")
	_ = add.MarkFlagRequired("cmek")
	addCloudFlags(f, add, &o.Cloud, cloudRegionAdd, cloudHelp["region-add"], "cmek", "node", "keyring")
	cmd.AddCommand(add)
	return cmd
}

func regionAddRun(f *Factory, p printer, root *cobra.Command, o *RegionAddOptions) error {
	if f.Config == nil {
		return usageError("pass --config FILE (or set CMEKCTL_CONFIG) naming the cluster config", "region add edits the cluster config file, and none was found")
	}
	if len(o.Nodes) != len(o.Keyrings) {
		return usageError("give one --keyring per --node, in the same order", "%d --node and %d --keyring flags", len(o.Nodes), len(o.Keyrings))
	}
	if _, ok := f.Config.Region(o.Region); ok {
		return usageError("use a new region name", "region %q is already in %s", o.Region, f.Config.Path)
	}
	if provider.RedactURI(o.CMEK) != o.CMEK {
		return usageError(recordedHint, "--cmek carries credentials, and region add writes it into %s, which may be shared; refusing (nothing was changed)", f.Config.Path)
	}
	path := f.Config.Path
	r := config.Region{Name: o.Region, CMEK: o.CMEK, AuthPrincipal: o.AuthPrincipal}
	for i, n := range o.Nodes {
		abs, _ := filepath.Abs(o.Keyrings[i])
		r.Nodes = append(r.Nodes, config.Node{Name: n, Keyring: abs})
	}
	if err := editConfigFile(root, path, func(b []byte) ([]byte, error) { return config.AddRegion(b, r) }); err != nil {
		return err
	}
	rep := struct {
		Config    string   `json:"config"`
		Region    string   `json:"region"`
		Nodes     []string `json:"nodes"`
		Protected bool     `json:"protected"`
		Next      string   `json:"next"`
	}{path, o.Region, o.Nodes, false, "cmekctl enable --region " + o.Region}
	if rep.Nodes == nil {
		rep.Nodes = []string{}
	}
	if err := p.print(rep, table{Headers: []string{"region", "nodes", "protected", "next"}, Rows: [][]string{{o.Region, strings.Join(o.Nodes, ","), "NO", rep.Next}}}); err != nil {
		return err
	}
	if p.text() {
		fmt.Fprintf(f.IO.ErrOut, "region %s added to %s; it is NOT protected until: %s\n", o.Region, path, rep.Next)
	}
	return nil
}
