package commands

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// StatusOptions are status's options.
type StatusOptions struct {
	Keyrings []string
	NoKMS    bool
	Check    bool
	Cloud    CloudOptions
}

func newCmdStatus(f *Factory, p func() printer) *cobra.Command {
	opts := &StatusOptions{}
	cmd := &cobra.Command{
		Use:   "status --keyring DIR [--keyring DIR]...",
		Short: "Show the key hierarchy of nodes and the KMS's view of their CMEK keys",
		Long: `Show, per node, the store keys and data keys (IDs, state, created), the CMEK
URI and the key version that wrapped the store key, when the next data-key
rotation is due (30 days after the active key's creation), whether an
interrupted rotation is pending, and the KMS's view of each CMEK key (one
Describe call per key; --no-kms skips it).

Per CockroachDB store: the store key it runs on and its file format, and the
key it was handed when its start is not yet confirmed (cmekctl node started);
per region: "N of M stores on the active store key". A store counts once its
start on the region's active store key is confirmed.

For monitoring (docs/monitoring.md): --check exits 80 (check-failed), one
stderr line per finding, when a node of the cluster config has no keyring, a
data-key rotation is overdue, a node is mid-rotation, behind its region or
revoked, or a CMEK key is not enabled; the report is printed all the same.
-o prometheus prints node_exporter textfile metrics: key ages, time to the
next rotation, stores on the active store key, revoked, CMEK key enabled.
Both read keyrings: not yet with --store or --cloud.`,
		Example: `  # cron: exit 80 when something needs an operator
  cmekctl status --check --no-kms > /dev/null

  # node_exporter textfile collector: write, then rename (never a half file)
  cmekctl status -o prometheus > /var/lib/node_exporter/textfile/cmekctl.prom.tmp &&
    mv /var/lib/node_exporter/textfile/cmekctl.prom.tmp /var/lib/node_exporter/textfile/cmekctl.prom`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkStatusMode(cmd, opts, p().format); err != nil {
				return err
			}
			if storeMode(cmd) != "" {
				return statusStoreRun(cmd.Context(), cmd, f, p())
			}
			return statusRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringArrayVar(&opts.Keyrings, "keyring", nil, "keyring directory (repeat for several nodes)")
	addSelectors(cmd)
	cmd.Flags().BoolVar(&opts.NoKMS, "no-kms", false, "do not ask the KMS (no network call)")
	cmd.Flags().BoolVar(&opts.Check, "check", false, "for monitoring: exit 80 (and say why on stderr) if a node is unprotected, revoked, mid-rotation or behind its region, a rotation is overdue, or a CMEK key is not enabled; -o prometheus writes node_exporter textfile metrics")
	_ = cmd.MarkFlagRequired("keyring")
	_ = cmd.MarkFlagDirname("keyring")
	addCloudFlags(f, cmd, &opts.Cloud, cloudRead, cloudHelp["status"], "keyring", "no-kms")
	addStoreFlags(cmd)
	return cmd
}

type statusKey struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	Created    time.Time `json:"created"`
	StoreKeyID string    `json:"store_key_id,omitempty"`
}

type statusNode struct {
	Keyring         string      `json:"keyring"`
	ClusterID       string      `json:"cluster_id"`
	Region          string      `json:"region"`
	Node            string      `json:"node"`
	EnabledAt       time.Time   `json:"enabled_at"`
	CMEKURI         string      `json:"cmek_uri"`
	CMEKVersion     string      `json:"cmek_version"`
	Generation      int         `json:"store_key_generation"`
	StoreKeys       []statusKey `json:"store_keys"`
	DataKeys        []statusKey `json:"data_keys"`
	BackupKeys      int         `json:"backup_keys"`
	NextRotationDue time.Time   `json:"next_rotation_due"`
	RotationOverdue bool        `json:"rotation_overdue"`
	MidRotation     string      `json:"mid_rotation,omitempty"`
	// BehindRegion: another node of the region holds a newer store-key
	// generation (a rotation that left this node out).
	BehindRegion int `json:"behind_region_generation,omitempty"`
	// SplitRegion: another node of the region holds another store key of
	// the same generation (two rotations with --partial).
	SplitRegion bool                `json:"split_region,omitempty"`
	Revoked     *keyring.Revocation `json:"revoked,omitempty"`
	Unlocks     int                 `json:"unlocks_recorded"`
	Stores      []statusStore       `json:"stores"`
}

type kmsView struct {
	URI      string             `json:"uri"`
	State    *provider.KeyState `json:"state,omitempty"`
	Error    string             `json:"error,omitempty"`
	Class    provider.Class     `json:"error_class,omitempty"`
	KMSError string             `json:"kms_error,omitempty"`
}

type unprotectedNode struct {
	Region  string `json:"region"`
	Node    string `json:"node"`
	Keyring string `json:"keyring"`
	Next    string `json:"next"`
}

func unprotectedTable(us []unprotectedNode) table {
	t := table{Title: "Not protected", Headers: []string{"region", "node", "keyring", "state", "next"}}
	for _, u := range us {
		t.Rows = append(t.Rows, []string{u.Region, u.Node, u.Keyring, "NOT PROTECTED", u.Next})
	}
	return t
}

type statusReport struct {
	Unprotected []unprotectedNode `json:"not_protected,omitempty"`
	Nodes       []statusNode      `json:"nodes"`
	Regions     []statusRegion    `json:"regions"`
	KMS         []kmsView         `json:"kms"`
	KMSCalls    KMSCalls          `json:"kms_calls"`
}

func statusRun(ctx context.Context, f *Factory, p printer, o *StatusOptions) error {
	if o.Cloud.Cloud {
		return cloudStatusRun(ctx, f, p, &o.Cloud)
	}
	// With a cluster config, a node without a keyring is reported as not
	// protected (a region added after enabling) instead of refused.
	var unprotected []unprotectedNode
	dirs := o.Keyrings
	if f.flagSources["keyring"] == srcCluster && f.Config != nil {
		dirs = nil
		for _, r := range f.Config.Regions {
			for _, n := range r.Nodes {
				if !slices.Contains(o.Keyrings, n.Keyring) {
					continue
				}
				if (keyring.Store{Dir: n.Keyring}).Exists() {
					dirs = append(dirs, n.Keyring)
				} else {
					unprotected = append(unprotected, unprotectedNode{Region: r.Name, Node: n.Name, Keyring: n.Keyring, Next: "cmekctl enable --region " + r.Name})
				}
			}
		}
		if len(dirs) == 0 {
			rep := statusReport{Nodes: []statusNode{}, KMS: []kmsView{}, Unprotected: unprotected}
			return statusOutput(f, p, o, rep, unprotectedTable(unprotected))
		}
	}
	g, err := keyring.LoadGroup(ctx, f.stores(dirs), false)
	if err != nil {
		return err
	}
	j, err := g.FindJournal()
	if err != nil {
		return err
	}
	now := f.Now()
	rep := statusReport{Nodes: []statusNode{}, KMS: []kmsView{}}
	var uris []string
	type genKey struct {
		gen int
		id  string
	}
	activeKeys := map[string]genKey{}
	for _, n := range g.Nodes {
		kr := n.KR
		sn := statusNode{Keyring: n.Store.Dir, ClusterID: kr.ClusterID, Region: kr.Region, Node: kr.Node, EnabledAt: kr.EnabledAt,
			CMEKURI: redact(kr.StoreWrap.CMEKURI), CMEKVersion: kr.StoreWrap.CMEKVersion, Generation: kr.StoreWrap.Generation,
			BackupKeys: len(kr.BackupKeys), NextRotationDue: kr.NextRotation(), Revoked: kr.Revoked, Unlocks: len(kr.Unlocks)}
		sn.RotationOverdue = now.After(sn.NextRotationDue)
		if j != nil && slices.Contains(j.Nodes, n.Store.Dir) && kr.LastOp != j.ID {
			sn.MidRotation = j.Op
		}
		for _, s := range kr.StoreKeys {
			sn.StoreKeys = append(sn.StoreKeys, statusKey{ID: s.ID, State: s.State, Created: s.Created})
		}
		for _, d := range kr.DataKeys {
			sn.DataKeys = append(sn.DataKeys, statusKey{ID: d.ID, State: d.State, Created: d.Created, StoreKeyID: d.StoreKeyID})
		}
		sn.Stores = storeStatus(kr)
		if a, ok := activeKeys[kr.Region]; !ok || kr.StoreWrap.Generation > a.gen {
			activeKeys[kr.Region] = genKey{kr.StoreWrap.Generation, kr.StoreWrap.KeyIDs[0]}
		}
		rep.Nodes = append(rep.Nodes, sn)
		if !slices.Contains(uris, kr.StoreWrap.CMEKURI) {
			uris = append(uris, kr.StoreWrap.CMEKURI)
		}
	}
	newest := map[string]int{}
	for _, n := range rep.Nodes {
		newest[n.Region] = max(newest[n.Region], n.Generation)
	}
	for i, n := range rep.Nodes {
		if n.Generation < newest[n.Region] {
			rep.Nodes[i].BehindRegion = newest[n.Region]
		}
	}
	active := map[string]string{}
	for r, a := range activeKeys {
		active[r] = a.id
	}
	rep.Regions = regionStatus(rep.Nodes, active)
	split := splitRegions(f, g)
	for i := range rep.Regions {
		rep.Regions[i].Reconcile = split[rep.Regions[i].Region]
	}
	for i, n := range rep.Nodes {
		if a := activeKeys[n.Region]; split[n.Region] != "" && n.Generation == a.gen && g.Nodes[i].KR.StoreWrap.KeyIDs[0] != a.id {
			rep.Nodes[i].SplitRegion = true
		}
	}
	s := f.newSession()
	if !o.NoKMS {
		for _, u := range uris {
			rep.KMS = append(rep.KMS, describeView(ctx, s, u))
		}
	}
	rep.KMSCalls = s.Counts()
	rep.Unprotected = unprotected
	tables := statusTables(p, rep)
	if len(unprotected) > 0 {
		tables = append(tables, unprotectedTable(unprotected))
	}
	return statusOutput(f, p, o, rep, tables...)
}

func describeView(ctx context.Context, s *kmsSession, uri string) kmsView {
	v := kmsView{URI: redact(uri)}
	k, err := s.Open(uri)
	if err == nil {
		var st provider.KeyState
		st, err = k.Describe(ctx)
		if err == nil {
			v.State = &st
			return v
		}
	}
	v.Error, v.Class = err.Error(), provider.Classify(err)
	code, msg := provider.Details(err)
	v.KMSError = strings.TrimSpace(code + " " + msg)
	return v
}

func statusTables(p printer, rep statusReport) []table {
	nodes := table{Title: "Nodes", Headers: []string{"region", "node", "cmek", "version", "store key", "data key", "data key created", "next rotation", "state"}}
	for _, n := range rep.Nodes {
		state := "ok"
		switch {
		case n.Revoked != nil:
			state = "REVOKED " + p.when(n.Revoked.At)
		case n.MidRotation != "":
			state = "mid-rotation (" + n.MidRotation + ")"
		case n.BehindRegion > 0:
			state = fmt.Sprintf("BEHIND: store key generation %d, region at %d", n.Generation, n.BehindRegion)
		case n.SplitRegion:
			state = fmt.Sprintf("SPLIT: another node of the region holds another store key of generation %d", n.Generation)
		case n.RotationOverdue:
			state = "rotation overdue"
		}
		var active, dk statusKey
		for _, s := range n.StoreKeys {
			if s.State == keyring.StateActive {
				active = s
			}
		}
		for _, d := range n.DataKeys {
			if d.State == keyring.StateActive {
				dk = d
			}
		}
		nodes.Rows = append(nodes.Rows, []string{n.Region, n.Node, n.CMEKURI, n.CMEKVersion, keyring.Short(active.ID),
			keyring.Short(dk.ID), p.when(dk.Created), p.when(n.NextRotationDue), state})
	}
	keys := table{Title: "Keys", Headers: []string{"node", "kind", "id", "state", "created"}}
	for _, n := range rep.Nodes {
		for _, s := range n.StoreKeys {
			keys.Rows = append(keys.Rows, []string{n.Node, "store", keyring.Short(s.ID), s.State, p.when(s.Created)})
		}
		for _, d := range n.DataKeys {
			keys.Rows = append(keys.Rows, []string{n.Node, "data", keyring.Short(d.ID), d.State, p.when(d.Created)})
		}
	}
	out := append([]table{nodes, keys}, storeTables(rep)...)
	if len(rep.KMS) > 0 {
		out = append(out, kmsTable(p, rep.KMS))
	}
	return out
}

func kmsTable(p printer, views []kmsView) table {
	t := table{Title: "KMS", Headers: []string{"cmek", "state", "primary version", "versions", "detail"}}
	for _, v := range views {
		if v.State == nil {
			t.Rows = append(t.Rows, []string{v.URI, "ERROR (" + string(v.Class) + ")", "-", "-", v.KMSError})
			continue
		}
		detail := ""
		if !v.State.DeletionDate.IsZero() {
			detail = "deletion on " + p.when(v.State.DeletionDate)
		}
		if v.State.Recoverable {
			detail = strings.TrimSpace(detail + " recoverable: " + v.State.RecoverableReason)
		}
		t.Rows = append(t.Rows, []string{v.URI, string(v.State.State), v.State.PrimaryVersion, strconv.Itoa(len(v.State.Versions)), detail})
	}
	return t
}
