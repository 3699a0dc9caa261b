package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The in-memory operations a shared store (package cluster) builds on: the
// same keyrings, wraps and rotations as the directory verbs, without the
// directories, locks and journal, which the store's compare-and-swap and
// intent record replace.

// NewRegionKeyrings makes the keyrings of a region's nodes in memory: one
// store key wrapped by the CMEK key (one KMS wrap) and a data key per node.
func NewRegionKeyrings(ctx context.Context, env Env, cluster, region, cmek string, nodes []string) ([]*Keyring, error) {
	if cluster == "" || region == "" || cmek == "" || len(nodes) == 0 {
		return nil, errors.New("enable needs a cluster ID, a region, a CMEK URI and at least one node")
	}
	if err := recordable(cmek); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if n == "" || seen[n] {
			return nil, fmt.Errorf("node names must be given and distinct (got %q twice or empty)", n)
		}
		seen[n] = true
	}
	key, err := env.Open(cmek)
	if err != nil {
		return nil, err
	}
	now := env.now()
	b := &Bundle{IDs: []string{newStoreKeyID()}, Keys: [][]byte{newKey()}}
	defer b.Wipe()
	w, err := wrapBundle(ctx, key, cluster, region, b, 1, now)
	if err != nil {
		return nil, err
	}
	out := make([]*Keyring, len(nodes))
	for i, n := range nodes {
		out[i] = newNodeKeyring(cluster, region, n, w, b, now)
	}
	return out, nil
}

// newNodeKeyring is a new node's keyring on a region's fresh bundle b
// (wrapped as w): a data key under the active store key.
func newNodeKeyring(cluster, region, node string, w StoreWrap, b *Bundle, now time.Time) *Keyring {
	kr := &Keyring{Format: FormatName, Version: FormatVersion, ClusterID: cluster, Region: region, Node: node,
		EnabledAt: now, StoreWrap: w, Updated: now,
		StoreKeys: []StoreKey{{ID: b.IDs[0], State: StateActive, Created: now}}}
	kr.DataKeys = []DataKey{newDataKey(kr, b.IDs[0], b.Keys[0], now)}
	return kr
}

// JoinRegion makes keyrings in memory for nodes that join the region of
// src, on its store keys: one KMS unwrap, no wrap. A shared store's enable
// that stopped part way is finished with it.
func JoinRegion(ctx context.Context, env Env, src *Keyring, nodes []string) ([]*Keyring, error) {
	if src.Revoked != nil {
		return nil, fmt.Errorf("%w: the region's keyrings are revoked: no node can join", ErrRevoked)
	}
	b, err := UnwrapBundle(ctx, env, src.ClusterID, src.Region, src.StoreWrap)
	if err != nil {
		return nil, err
	}
	defer b.Wipe()
	now := env.now()
	out := make([]*Keyring, len(nodes))
	for i, n := range nodes {
		out[i] = joinKeyring(src, n, b, now, false)
	}
	return out, nil
}

// PlanKeyrings makes the KMS calls of a fresh rotation of one region's
// keyrings (one unwrap; one wrap for store-key and CMEK rotations): the
// bundle to apply (nil for a CMEK rotation) and the new wrap (zero for a
// data-key rotation). The caller wipes the bundle.
func PlanKeyrings(ctx context.Context, env Env, cluster, region string, krs []*Keyring, op string, opt RotateOptions) (*Bundle, StoreWrap, error) {
	nodes := make([]*Node, len(krs))
	for i, kr := range krs {
		nodes[i] = &Node{KR: kr}
	}
	return planRegion(ctx, env, cluster, region, nodes, op, opt)
}

// ApplyOp applies operation opID to one keyring in memory, with the
// region's bundle b (data-key and store-key rotations) and the recorded
// wraps by region (store-key and CMEK rotations). It sets LastOp to opID.
func ApplyOp(env Env, kr *Keyring, op, opID string, b *Bundle, wraps map[string]StoreWrap) error {
	return applyNode(env, &Node{KR: kr}, op, b, &Journal{ID: opID, Op: op, Wraps: wraps})
}

// NewOpID returns a fresh operation ID.
func NewOpID() string { return newID()[:16] }

// Validate checks a keyring's consistency.
func (k *Keyring) Validate() error { return k.validate() }
