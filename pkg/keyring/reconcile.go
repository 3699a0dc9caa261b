package keyring

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// A split region: its nodes hold different store-key bundles. A rotation
// given part of a region (--partial) leaves the others on the older bundle;
// a second partial rotation of the others gives them a third. A store-key
// rotation of every node of the region reconciles it: the bundles are
// unwrapped once each (one KMS call per distinct bundle), their keys pooled,
// and every node moves to one new store key whose bundle keeps each node's
// outgoing active key and every key a store of the region may still run on
// (adoption.go). Data-key rotations work on a split region the same way. A
// CMEK rotation re-wraps one bundle and is refused until then.

// ErrSplitRegion is returned by a rotation that needs one store-key bundle
// per region when the region's nodes hold several.
var ErrSplitRegion = errors.New("the region's nodes hold different store keys")

// SplitRegionError names the region and its nodes' bundles.
type SplitRegionError struct {
	Region string
	Op     string
	// Nodes: one line per distinct bundle, "n1 (generation 3, store key ab12)".
	Nodes []string
	// Dirs are the keyring directories of the region's nodes given.
	Dirs []string
}

func (e *SplitRegionError) Error() string {
	return fmt.Sprintf("%v: %s: %s re-wraps one set of store keys and cannot join them; a store-key rotation of every node of the region does", ErrSplitRegion, strings.Join(e.Nodes, ", "), e.Op)
}

func (e *SplitRegionError) Unwrap() error { return ErrSplitRegion }

// Split reports whether nodes hold more than one store-key bundle.
func Split(krs []*Keyring) bool {
	for _, kr := range krs[min(1, len(krs)):] {
		if !slices.Equal(kr.StoreWrap.KeyIDs, krs[0].StoreWrap.KeyIDs) {
			return true
		}
	}
	return false
}

// distinctBundles returns one node per distinct bundle (by its key IDs:
// store-key IDs are random, so equal IDs are equal keys), the newest
// generation first, and of each bundle the node of its newest wrap.
func distinctBundles(nodes []*Node) []*Node {
	var out []*Node
	for _, n := range nodes {
		i := slices.IndexFunc(out, func(o *Node) bool { return slices.Equal(o.KR.StoreWrap.KeyIDs, n.KR.StoreWrap.KeyIDs) })
		switch {
		case i < 0:
			out = append(out, n)
		case n.KR.StoreWrap.Generation > out[i].KR.StoreWrap.Generation:
			out[i] = n
		}
	}
	slices.SortStableFunc(out, func(a, b *Node) int { return b.KR.StoreWrap.Generation - a.KR.StoreWrap.Generation })
	return out
}

func splitError(region, op string, nodes []*Node) error {
	e := &SplitRegionError{Region: region, Op: op}
	for _, n := range distinctBundles(nodes) {
		var same []string
		for _, m := range nodes {
			if slices.Equal(m.KR.StoreWrap.KeyIDs, n.KR.StoreWrap.KeyIDs) {
				same = append(same, m.KR.Node)
			}
		}
		e.Nodes = append(e.Nodes, fmt.Sprintf("%s on store key %s (generation %d)", strings.Join(same, " and "), short(n.KR.StoreWrap.KeyIDs[0]), n.KR.StoreWrap.Generation))
	}
	for _, n := range nodes {
		e.Dirs = append(e.Dirs, n.Store.Dir)
	}
	return e
}

// unwrapRegion unwraps the store keys the nodes of a region hold: one KMS
// call per distinct bundle. The bundle returned pools their keys, the
// newest bundle's first; actives are each bundle's active key, newest
// first (a store-key rotation keeps them all).
func unwrapRegion(ctx context.Context, env Env, cluster, region string, nodes []*Node) (*Bundle, []string, error) {
	reps := distinctBundles(nodes)
	var out *Bundle
	var actives []string
	for _, n := range reps {
		b, err := UnwrapBundle(ctx, env, cluster, region, n.KR.StoreWrap)
		if err != nil {
			if out != nil {
				out.Wipe()
			}
			return nil, nil, err
		}
		actives = append(actives, b.IDs[0])
		if out == nil {
			out = b
			continue
		}
		if err := mergeBundle(out, b); err != nil {
			out.Wipe()
			return nil, nil, fmt.Errorf("node %s: %w", n.KR.Node, err)
		}
	}
	out.meta = storeKeyMeta(nodes)
	return out, actives, nil
}

// storeKeyMeta is the store keys' metadata as the nodes record them.
func storeKeyMeta(nodes []*Node) map[string]StoreKey {
	meta := map[string]StoreKey{}
	for _, n := range nodes {
		for _, s := range n.KR.StoreKeys {
			if m, ok := meta[s.ID]; !ok || s.Created.Before(m.Created) {
				meta[s.ID] = s
			}
		}
	}
	return meta
}

// mergeBundle adds b's keys that dst lacks to dst (taking them; b's others
// are wiped). A key ID present in both with different material is refused.
func mergeBundle(dst, b *Bundle) error {
	var err error
	for i, id := range b.IDs {
		switch have := dst.Key(id); {
		case have == nil:
			dst.IDs, dst.Keys = append(dst.IDs, id), append(dst.Keys, b.Keys[i])
			continue
		case subtle.ConstantTimeCompare(have, b.Keys[i]) != 1 && err == nil:
			err = fmt.Errorf("%w: store key %s differs between the region's bundles", ErrCorrupt, short(id))
		}
		Wipe(b.Keys[i])
	}
	return err
}

// addBundleKeys lists in kr the store keys of bundle w it does not list yet
// (a node that joins the keys another node of its split region held), with
// the metadata another node recorded when known.
func addBundleKeys(kr *Keyring, w StoreWrap, meta map[string]StoreKey) {
	for _, id := range w.KeyIDs[1:] {
		if kr.indexStore(id) >= 0 {
			continue
		}
		sk, ok := meta[id]
		if !ok {
			sk = StoreKey{ID: id, Created: w.WrappedAt}
		}
		kr.StoreKeys = append(kr.StoreKeys, StoreKey{ID: id, State: StatePrevious, Created: sk.Created, Origin: sk.Origin})
	}
}

// pinRetiring pins, after the fact, the CMEK key of each wrap about to be
// replaced that was written unpinned (by a cmekctl before pinning): the
// key has just unwrapped it (unwrapRegion), so it is reachable, and this
// is the last chance to record its identity before the wrap goes to the
// history, where verify-destroyed needs the pin to prove it destroyed. A
// key that cannot pin leaves the wrap as it was.
func pinRetiring(ctx context.Context, env Env, nodes []*Node) {
	for _, rep := range distinctBundles(nodes) {
		w := rep.KR.StoreWrap
		if len(w.CMEKIdentity) > 0 {
			continue
		}
		key, err := env.Open(w.CMEKURI)
		if err != nil {
			continue
		}
		pin := provider.PinOf(ctx, key, provider.Wrapped{Ciphertext: w.Wrapped, KeyVersion: w.CMEKVersion})
		if pin == nil {
			continue
		}
		for _, n := range nodes {
			if len(n.KR.StoreWrap.CMEKIdentity) == 0 && bytes.Equal(n.KR.StoreWrap.Wrapped, w.Wrapped) {
				n.KR.StoreWrap.CMEKIdentity = pin
			}
		}
	}
}
