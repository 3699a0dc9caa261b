package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	DryRun    bool
	AdoptKey  string
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

Enabling CMEK leaves existing data as it is; it protects newly written data.

--adopt-key FILE brings stores that already run on an operator's key (a
cockroach gen encryption-key file, v1 or v2) under cmekctl: that key becomes
the region's first store key, wrapped by the CMEK key; the stores start on it
unchanged, and the next rotate store-key moves them to a key cmekctl made.
Shred the file once every node has started with cmekctl unlock.`,
		Example: `  cmekctl kms create file-kms:///var/lib/cmekctl/kms/cluster1
  cmekctl enable --cluster-id c1 --region us-east1 --cmek file-kms:///var/lib/cmekctl/kms/cluster1 \
    --keyring /var/lib/cockroach/n1/cmek --node n1 --keyring /var/lib/cockroach/n2/cmek --node n2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if storeMode(cmd) != "" {
				return enableStoreRun(cmd.Context(), cmd, f, p(), opts)
			}
			return enableRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringArrayVar(&opts.Keyrings, "keyring", nil, "keyring directory of a node (repeat, paired with --node)")
	cmd.Flags().StringArrayVar(&opts.Nodes, "node", nil, "node name (repeat, paired with --keyring)")
	cmd.Flags().StringVar(&opts.ClusterID, "cluster-id", "", "cluster ID")
	cmd.Flags().StringVar(&opts.Region, "region", "", "region of the nodes")
	cmd.Flags().StringVar(&opts.CMEK, "cmek", "", "URI of the region's CMEK key")
	addRecordedURIFileFlag(cmd, "cmek")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the plan per region and node, and the KMS calls; change nothing")
	cmd.Flags().StringVar(&opts.AdoptKey, "adopt-key", "", "adopt the store key the nodes' stores run on now: a cockroach gen encryption-key file (v1 or v2); one region only")
	_ = cmd.MarkFlagDirname("keyring")
	addCloudFlags(f, cmd, &opts.Cloud, cloudSpecs, cloudHelp["enable"], "keyring", "node", "region", "cmek")
	addStoreFlags(cmd)
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
	reqs, fromConfig, err := enableRequests(f, o)
	if err != nil {
		return err
	}
	if o.AdoptKey != "" {
		a, err := readAdoptKey(o.AdoptKey, len(reqs))
		if err != nil {
			return err
		}
		defer keyring.Wipe(a.Key)
		reqs[0].Adopt = a
	}
	if o.DryRun {
		return printPlan(p, planEnable(reqs))
	}
	err = runEnable(ctx, f, p, reqs, fromConfig)
	if isKeyNotFound(err) {
		// The operator just named this key: a URI that names no key is a
		// bad argument, not a key that was revoked.
		return &ExitError{Code: ExitUsage, Err: err, Hint: notFoundHint}
	}
	if err == nil && o.AdoptKey != "" {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: note: store key %s from %s is now wrapped by the CMEK key; once every node has started with cmekctl unlock, shred the file (shred -u %s)\n", keyring.Short(reqs[0].Adopt.ID), o.AdoptKey, o.AdoptKey)
	}
	return err
}

// enableRequests builds one request per region, from the flags or from the
// cluster config (every region, or --region's).
func enableRequests(f *Factory, o *EnableOptions) ([]keyring.EnableRequest, bool, error) {
	if len(o.Keyrings) == 0 && f.Config != nil && len(f.Config.Regions) > 0 {
		c := f.Config
		if o.ClusterID != "" && o.ClusterID != c.ClusterID {
			return nil, true, usageError("drop --cluster-id, or use the config of that cluster", "--cluster-id %q differs from cluster_id %q in %s", o.ClusterID, c.ClusterID, c.Path)
		}
		var regions []string
		if o.Region != "" {
			regions = []string{o.Region}
		}
		sel, err := c.Select(regions, o.Nodes)
		if err != nil {
			return nil, true, usageError("cmekctl config view lists the cluster's regions and nodes", "%v", err)
		}
		var reqs []keyring.EnableRequest
		for _, r := range sel {
			req := keyring.EnableRequest{Cluster: c.ClusterID, Region: r.Name, CMEK: r.CMEK}
			for _, n := range r.Nodes {
				req.Nodes = append(req.Nodes, keyring.EnableNode{Store: f.store(n.Keyring), Name: n.Name})
			}
			reqs = append(reqs, req)
		}
		return reqs, true, nil
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
		return nil, false, usageError("give --keyring/--node pairs, --cluster-id, --region and --cmek, or a cluster config (--config)", "enable needs %s", strings.Join(missing, ", "))
	}
	if len(o.Keyrings) != len(o.Nodes) {
		return nil, false, usageError("give one --node per --keyring, in the same order", "%d --keyring and %d --node flags", len(o.Keyrings), len(o.Nodes))
	}
	req := keyring.EnableRequest{Cluster: o.ClusterID, Region: o.Region, CMEK: o.CMEK}
	for i, dir := range o.Keyrings {
		req.Nodes = append(req.Nodes, keyring.EnableNode{Store: f.store(dir), Name: o.Nodes[i]})
	}
	return []keyring.EnableRequest{req}, false, nil
}

// planEnable says what enable would do: one wrap per new region, one unwrap
// per region that an earlier enable left part way.
func planEnable(reqs []keyring.EnableRequest) *keyring.Plan {
	plan := &keyring.Plan{Op: keyring.OpEnable, Regions: []keyring.PlanRegion{}, Nodes: []keyring.PlanNode{}}
	for _, req := range reqs {
		rp := keyring.PlanRegion{Region: req.Region, CMEK: req.CMEK}
		existing := 0
		for _, n := range req.Nodes {
			if n.Store.Exists() {
				existing++
			}
		}
		for _, n := range req.Nodes {
			pn := keyring.PlanNode{Dir: n.Store.Dir, Region: req.Region, Node: n.Name, Action: keyring.WouldEnable}
			switch {
			case n.Store.Exists():
				pn.Action, pn.Detail = "skip", "already enabled"
			case existing > 0:
				pn.Detail = "joins the region's store key"
			}
			plan.Nodes = append(plan.Nodes, pn)
		}
		switch {
		case existing == len(req.Nodes):
		case existing > 0:
			rp.Unwrap = 1
		default:
			rp.Wrap = 1
		}
		plan.Regions = append(plan.Regions, rp)
	}
	return plan
}

// runEnable enables the regions in parallel: one wrap per region. With a
// cluster config, a region that is already enabled is reported as such.
func runEnable(ctx context.Context, f *Factory, p printer, reqs []keyring.EnableRequest, fromConfig bool) error {
	s := f.newSession()
	env := f.env(s)
	var mu sync.Mutex
	rep := enableReport{Op: keyring.OpEnable, ClusterID: reqs[0].Cluster, Nodes: []keyring.NodeResult{}}
	var regions, uris []string
	for _, r := range reqs {
		regions, uris = append(regions, r.Region), append(uris, redact(r.CMEK))
	}
	rep.Region, rep.CMEK = strings.Join(regions, ","), strings.Join(uris, ",")
	var errs []error
	already := 0
	var wg sync.WaitGroup
	for _, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := keyring.Enable(ctx, env, req)
			mu.Lock()
			defer mu.Unlock()
			if fromConfig && errors.Is(err, keyring.ErrAlreadyEnabled) && res == nil {
				already++
				for _, n := range req.Nodes {
					rep.Nodes = append(rep.Nodes, keyring.NodeResult{Dir: n.Store.Dir, Region: req.Region, Node: n.Name, Action: keyring.ActionAlreadyEnabled})
				}
				return
			}
			if res != nil {
				rep.Nodes = append(rep.Nodes, res.Nodes...)
			}
			if err != nil {
				if len(reqs) > 1 {
					err = fmt.Errorf("region %s: %w", req.Region, err)
				}
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 && len(rep.Nodes) == 0 {
		return errors.Join(errs...)
	}
	slices.SortStableFunc(rep.Nodes, func(a, b keyring.NodeResult) int { return strings.Compare(a.Region, b.Region) })
	rep.KMSCalls = s.Counts()
	if perr := p.print(rep, nodeTable(rep.Nodes)); perr != nil {
		return perr
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if already == len(reqs) {
		return fmt.Errorf("%w in every region selected from %s: nothing was changed", keyring.ErrAlreadyEnabled, f.Config.Path)
	}
	return nil
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

// readAdoptKey reads a key file for enable --adopt-key, before any KMS call.
func readAdoptKey(path string, regions int) (*keyring.AdoptedKey, error) {
	if regions != 1 {
		return nil, usageError("adopt a key for one region at a time: add --region", "--adopt-key with %d regions", regions)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, usageError("give the file cockroach gen encryption-key wrote", "--adopt-key: %v", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, 64<<10))
	if err != nil {
		return nil, usageError("give the file cockroach gen encryption-key wrote", "--adopt-key: %v", err)
	}
	defer keyring.Wipe(data)
	id, format, key, err := keyring.ParseStoreKeyFile(data)
	if err != nil {
		return nil, usageError("give the file cockroach gen encryption-key wrote (v1: 32-byte ID then the key; v2: a JWKS with one oct key)", "--adopt-key %s: %v", path, err)
	}
	return &keyring.AdoptedKey{ID: id, Format: format, Key: key}, nil
}
