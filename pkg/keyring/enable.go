package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// EnableNode names a node to enable and its keyring directory.
type EnableNode struct {
	Store Store
	Name  string
}

// EnableRequest enables CMEK for the nodes of one region.
type EnableRequest struct {
	Cluster, Region, CMEK string
	Nodes                 []EnableNode
	// Adopt, if set, is an operator's existing store key (enable
	// --adopt-key): it becomes the region's first store key, and the nodes'
	// stores are taken to run on it already.
	Adopt *AdoptedKey
}

// AdoptedKey is a store key from a `cockroach gen encryption-key` file.
type AdoptedKey struct {
	ID, Format string
	Key        []byte
}

// Enable creates the region's store key wrapped by the CMEK key (one KMS
// wrap) and a keyring with a fresh data key for each node. It refuses a node
// whose keyring exists. No keyring is written unless the wrap succeeded.
func Enable(ctx context.Context, env Env, req EnableRequest) (*Result, error) {
	if req.Cluster == "" || req.Region == "" || req.CMEK == "" || len(req.Nodes) == 0 {
		return nil, errors.New("enable needs a cluster ID, a region, a CMEK URI and at least one node")
	}
	if err := recordable(req.CMEK); err != nil {
		return nil, err
	}
	var locks []func()
	defer func() {
		for _, f := range locks {
			f()
		}
	}()
	names := map[string]bool{}
	var existing []*Keyring
	var missing []EnableNode
	for _, n := range req.Nodes {
		if n.Name == "" || names[n.Name] {
			return nil, fmt.Errorf("node names must be given and distinct (got %q twice or empty)", n.Name)
		}
		names[n.Name] = true
		if n.Store.Exists() {
			kr, err := n.Store.Load()
			if err != nil {
				return nil, err
			}
			if kr.ClusterID != req.Cluster || kr.Region != req.Region || kr.Node != n.Name {
				return nil, fmt.Errorf("%s: %w for node %q of region %q, cluster %q: nothing was changed", n.Store.Dir, ErrAlreadyEnabled, kr.Node, kr.Region, kr.ClusterID)
			}
			existing = append(existing, kr)
			continue
		}
		missing = append(missing, n)
	}
	if len(missing) == 0 {
		return nil, fmt.Errorf("%s: %w for every node given: nothing was changed (use cmekctl status, or rotate)", req.Nodes[0].Store.Dir, ErrAlreadyEnabled)
	}
	if len(existing) > 0 {
		// An earlier enable of this region stopped part way: the missing
		// nodes join the store key the others already have.
		src := existing[0]
		for _, kr := range existing[1:] {
			if kr.StoreWrap.Generation > src.StoreWrap.Generation {
				src = kr
			}
		}
		res, err := addNodes(ctx, env, src, missing, req.Adopt != nil)
		if res != nil {
			res.Resumed = true
			for _, kr := range existing {
				res.Nodes = append(res.Nodes, NodeResult{Region: kr.Region, Node: kr.Node, Action: ActionAlreadyEnabled})
			}
		}
		return res, err
	}
	nodes := slices.Clone(req.Nodes)
	for i, n := range nodes {
		st, err := n.Store.prepareLocked(ctx, &locks)
		if err != nil {
			return nil, err
		}
		nodes[i].Store = st
		if st.Exists() { // created while we waited for the lock
			return nil, fmt.Errorf("%s: %w for this node", n.Store.Dir, ErrAlreadyEnabled)
		}
	}
	key, err := env.Open(req.CMEK)
	if err != nil {
		return nil, err
	}
	now := env.now()
	b := &Bundle{IDs: []string{newStoreKeyID()}, Keys: [][]byte{newKey()}}
	var unrecorded StoreState
	origin := ""
	if a := req.Adopt; a != nil {
		if !validKeySize(len(a.Key)) || a.ID == "" || !validFileFormat(a.Format) {
			return nil, refusef("give a file written by cockroach gen encryption-key", "the key to adopt is malformed")
		}
		Wipe(b.Keys[0])
		b = &Bundle{IDs: []string{a.ID}, Keys: [][]byte{bytes.Clone(a.Key)}}
		unrecorded, origin = StoreState{On: KeyRef{ID: a.ID, Format: a.Format}}, "adopted"
	}
	defer b.Wipe()
	w, err := wrapBundle(ctx, key, req.Cluster, req.Region, b, 1, now)
	if err != nil {
		return nil, err
	}
	res := &Result{Op: OpEnable, Nodes: make([]NodeResult, len(req.Nodes))}
	forEach(indexes(len(nodes)), func(i int) {
		n := nodes[i]
		kr := newNodeKeyring(req.Cluster, req.Region, n.Name, w, b, now)
		kr.Unrecorded, kr.StoreKeys[0].Origin = unrecorded, origin
		res.Nodes[i] = finish(env, kr, n.Store, ActionEnabled, n.Store.Save(kr))
	})
	if res.Failed() > 0 {
		return res, fmt.Errorf("%w: %d of %d nodes were not enabled; run the same command again: the missing nodes join the region's store key", ErrPartial, res.Failed(), len(res.Nodes))
	}
	return res, nil
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// AddNodes adds nodes to a region that is already enabled: each gets the
// region's wrapped store keys (copied from src, a keyring of the region) and
// a fresh data key. One KMS unwrap, whatever the number of nodes; no wrap.
func AddNodes(ctx context.Context, env Env, src *Keyring, nodes []EnableNode) (*Result, error) {
	return addNodes(ctx, env, src, nodes, false)
}

// joinKeyring is a new node's keyring on the store keys of src's region (b
// unwrapped from src.StoreWrap): a data key under the active store key.
// With adopted, its stores are taken to run on the region's adopted key.
func joinKeyring(src *Keyring, node string, b *Bundle, now time.Time, adopted bool) *Keyring {
	kr := &Keyring{Format: FormatName, Version: FormatVersion, ClusterID: src.ClusterID, Region: src.Region, Node: node,
		EnabledAt: src.EnabledAt, StoreWrap: src.StoreWrap, Updated: now,
		StoreKeys: slices.Clone(src.StoreKeys), BackupKeys: slices.Clone(src.BackupKeys)}
	if adopted {
		for _, sk := range src.StoreKeys {
			if sk.Origin == "adopted" && slices.Contains(src.StoreWrap.KeyIDs, sk.ID) {
				kr.Unrecorded = StoreState{On: KeyRef{ID: sk.ID, Format: adoptedFormat(src, sk.ID)}}
			}
		}
	}
	active := kr.ActiveStoreKey()
	kr.DataKeys = []DataKey{newDataKey(kr, active.ID, b.Key(active.ID), now)}
	return kr
}

// addNodes is AddNodes; with adopted, the new nodes' stores are taken to run
// on the region's adopted key (an enable --adopt-key finished by a re-run).
func addNodes(ctx context.Context, env Env, src *Keyring, nodes []EnableNode, adopted bool) (*Result, error) {
	if src.Revoked != nil {
		return nil, fmt.Errorf("%w: the region's keyrings are revoked: no node can join", ErrRevoked)
	}
	var locks []func()
	defer func() {
		for _, f := range locks {
			f()
		}
	}()
	nodes = slices.Clone(nodes)
	for i, n := range nodes {
		if n.Name == "" {
			return nil, errors.New("a node name is required")
		}
		if n.Store.Exists() {
			return nil, fmt.Errorf("%s: %w for this node: nothing was changed", n.Store.Dir, ErrAlreadyEnabled)
		}
		st, err := n.Store.prepareLocked(ctx, &locks)
		if err != nil {
			return nil, err
		}
		nodes[i].Store = st
	}
	b, err := UnwrapBundle(ctx, env, src.ClusterID, src.Region, src.StoreWrap)
	if err != nil {
		return nil, err
	}
	defer b.Wipe()
	now := env.now()
	res := &Result{Op: OpEnable, Nodes: make([]NodeResult, len(nodes))}
	forEach(indexes(len(nodes)), func(i int) {
		n := nodes[i]
		kr := joinKeyring(src, n.Name, b, now, adopted)
		res.Nodes[i] = finish(env, kr, n.Store, ActionEnabled, n.Store.Save(kr))
		if res.Nodes[i].Err == nil {
			res.Nodes[i].Detail = "joined the region's store key"
		}
	})
	if res.Failed() > 0 {
		return res, fmt.Errorf("%w: %d of %d nodes were not added; run the same command again", ErrPartial, res.Failed(), len(nodes))
	}
	return res, nil
}
