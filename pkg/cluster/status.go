package cluster

import (
	"context"
	"errors"
	"sort"

	"github.com/cmekctl/cmekctl/pkg/store"
)

// NodeStatus is one node as the store shows it.
type NodeStatus struct {
	Region      string `json:"region"`
	Node        string `json:"node"`
	KeyringRev  uint64 `json:"keyring_rev"`
	Generation  int    `json:"generation"`
	ActiveKey   string `json:"active_store_key"`
	Revoked     bool   `json:"revoked"`
	Handed      string `json:"handed_store_key,omitempty"`
	SeenRev     uint64 `json:"status_keyring_rev,omitempty"`
	Purged      bool   `json:"purged,omitempty"`
	LastOp      string `json:"last_op,omitempty"`
	Pending     string `json:"pending,omitempty"` // what the node has not picked up
	StatusError string `json:"status_error,omitempty"`
}

// RegionStatus sums up a region.
type RegionStatus struct {
	Region    string `json:"region"`
	ActiveKey string `json:"active_store_key"`
	Nodes     int    `json:"nodes"`
	Running   int    `json:"running_active_key"` // nodes whose last start was handed the active key
	Revoked   int    `json:"revoked"`
	Unacked   int    `json:"revoked_unacknowledged"`
}

// ClusterStatus is status --store.
type ClusterStatus struct {
	Cluster string         `json:"cluster_id"`
	Intent  *Intent        `json:"intent,omitempty"`
	Regions []RegionStatus `json:"regions"`
	Nodes   []NodeStatus   `json:"nodes"`
}

// ReadCluster reads every keyring and status document of cluster c (two
// requests per node, in parallel) and says, per region, how many nodes run
// the active store key and which have not picked up a rotation or a
// revocation.
func ReadCluster(ctx context.Context, s store.Store, c string, regions, nodes []string) (*ClusterStatus, error) {
	refs, err := ListNodes(ctx, s, c, regions, nodes)
	if err != nil {
		return nil, err
	}
	out := &ClusterStatus{Cluster: c, Nodes: make([]NodeStatus, len(refs))}
	var in Intent
	if _, err := getJSON(ctx, s, intentKey(c), FormatIntent, &in); err == nil && in.State == IntentPending {
		in.Wraps = nil
		out.Intent = &in
	}
	errs := make([]error, len(refs))
	perRegion(refs, func(i int) {
		r := refs[i]
		ns := NodeStatus{Region: r.Region, Node: r.Node}
		kr, ver, err := getKeyring(ctx, s, c, r.Region, r.Node)
		if err != nil {
			errs[i] = err
			return
		}
		ns.KeyringRev, ns.Generation, ns.ActiveKey, ns.Revoked, ns.LastOp = ver.Rev, kr.StoreWrap.Generation, kr.ActiveStoreKey().ID, kr.Revoked != nil, kr.LastOp
		st, err := ReadStatus(ctx, s, c, r.Region, r.Node)
		switch {
		case errors.Is(err, store.ErrNotFound):
			ns.Pending = "never started"
		case err != nil:
			ns.StatusError = err.Error()
		default:
			ns.SeenRev, ns.Purged = st.KeyringRev, !st.Purged.IsZero()
			if st.Handed != nil {
				ns.Handed = st.Handed.StoreKeyID
			}
		}
		switch {
		case ns.Revoked && !ns.Purged:
			ns.Pending = "revocation not acknowledged"
		case !ns.Revoked && ns.Pending == "" && ns.Handed != ns.ActiveKey:
			ns.Pending = "store-key rotation: restart to pick it up"
		case !ns.Revoked && ns.Pending == "" && ns.SeenRev < ver.Rev:
			ns.Pending = "keyring changed since its last start"
		}
		out.Nodes[i] = ns
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	byRegion := map[string]*RegionStatus{}
	for _, n := range out.Nodes {
		rs := byRegion[n.Region]
		if rs == nil {
			rs = &RegionStatus{Region: n.Region}
			byRegion[n.Region] = rs
		}
		rs.Nodes++
		if rs.ActiveKey == "" || n.Generation > 0 && n.ActiveKey != rs.ActiveKey && n.Generation >= genOf(out.Nodes, rs.Region, rs.ActiveKey) {
			rs.ActiveKey = n.ActiveKey
		}
		if n.Revoked {
			rs.Revoked++
			if !n.Purged {
				rs.Unacked++
			}
		}
	}
	for _, n := range out.Nodes {
		if rs := byRegion[n.Region]; n.Handed != "" && n.Handed == rs.ActiveKey && !n.Revoked {
			rs.Running++
		}
	}
	for _, rs := range byRegion {
		out.Regions = append(out.Regions, *rs)
	}
	sort.Slice(out.Regions, func(i, j int) bool { return out.Regions[i].Region < out.Regions[j].Region })
	return out, nil
}

func genOf(nodes []NodeStatus, region, key string) int {
	for _, n := range nodes {
		if n.Region == region && n.ActiveKey == key {
			return n.Generation
		}
	}
	return 0
}
