package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile"
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
		RunE: func(cmd *cobra.Command, args []string) error { return nodeAddRun(cmd.Context(), f, p(), o) },
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

func nodeAddRun(ctx context.Context, f *Factory, p printer, o *NodeAddOptions) error {
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
		kr, err := keyring.Store{Dir: d}.Load()
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
		action, detail := "enable", "joins the region's store key"
		if (keyring.Store{Dir: o.Keyring}).Exists() {
			action, detail = "skip", "already enabled"
		}
		return printPlan(p, &keyring.Plan{Op: "node add",
			Regions: []keyring.PlanRegion{{Region: src.Region, CMEK: src.StoreWrap.CMEKURI, Unwrap: 1}},
			Nodes:   []keyring.PlanNode{{Dir: o.Keyring, Region: src.Region, Node: o.Node, Action: action, Detail: detail}}})
	}
	s := f.newSession()
	res, err := keyring.AddNodes(ctx, f.env(s), src, []keyring.EnableNode{{Store: keyring.Store{Dir: o.Keyring}, Name: o.Node}})
	if res == nil {
		return err
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
			return regionAddRun(f, p(), o)
		},
	}
	add.Flags().StringVar(&o.Region, "region", "", "the region's name")
	add.Flags().StringVar(&o.CMEK, "cmek", "", "the region's CMEK key URI")
	add.Flags().StringVar(&o.AuthPrincipal, "auth-principal", "", "the Cloud's auth principal for the key (IAM role ARN or service account); with --cloud, REGION=PRINCIPAL or PRINCIPAL")
	add.Flags().StringArrayVar(&o.Nodes, "node", nil, "a node of the region (repeat, paired with --keyring)")
	add.Flags().StringArrayVar(&o.Keyrings, "keyring", nil, "the node's keyring directory (repeat, paired with --node)")
	_ = add.MarkFlagRequired("region")
	_ = add.MarkFlagRequired("cmek")
	addCloudFlags(f, add, &o.Cloud, cloudRegionAdd, cloudHelp["region-add"], "cmek", "node", "keyring")
	cmd.AddCommand(add)
	return cmd
}

func regionAddRun(f *Factory, p printer, o *RegionAddOptions) error {
	if f.Config == nil {
		return usageError("pass --config FILE (or set CMEKCTL_CONFIG) naming the cluster config", "region add edits the cluster config file, and none was found")
	}
	if len(o.Nodes) != len(o.Keyrings) {
		return usageError("give one --keyring per --node, in the same order", "%d --node and %d --keyring flags", len(o.Nodes), len(o.Keyrings))
	}
	if _, ok := f.Config.Region(o.Region); ok {
		return usageError("use a new region name", "region %q is already in %s", o.Region, f.Config.Path)
	}
	path := f.Config.Path
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return exitf(ExitCorrupt, "%s: not a mapping: cannot add a region", path)
	}
	root := doc.Content[0]
	var regions *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "regions" {
			regions = root.Content[i+1]
		}
	}
	if regions == nil {
		regions = &yaml.Node{Kind: yaml.SequenceNode}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "regions"}, regions)
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	rn := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("name"), str(o.Region), str("cmek"), str(o.CMEK)}}
	if o.AuthPrincipal != "" {
		rn.Content = append(rn.Content, str("auth_principal"), str(o.AuthPrincipal))
	}
	nodes := &yaml.Node{Kind: yaml.SequenceNode}
	for i, n := range o.Nodes {
		abs, _ := filepath.Abs(o.Keyrings[i])
		nodes.Content = append(nodes.Content, &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle, Content: []*yaml.Node{str("name"), str(n), str("keyring"), str(abs)}})
	}
	rn.Content = append(rn.Content, str("nodes"), nodes)
	regions.Content = append(regions.Content, rn)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	// Validate the result as a whole before writing it.
	known := func(string) bool { return true }
	if _, err := config.Parse(path, out, known); err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	// A config that is a symbolic link (dotfiles) stays one: the file it
	// names is replaced.
	target := path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		target = real
	}
	if err := safefile.WriteFile(safefile.OS{}, target, out, fi.Mode().Perm()); err != nil {
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
	if p.format == OutputTable {
		fmt.Fprintf(f.IO.ErrOut, "region %s added to %s; it is NOT protected until: %s\n", o.Region, path, rep.Next)
	}
	return nil
}
