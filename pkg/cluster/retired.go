package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// Retired-key markers: how a store-key rotation learns, without reading
// every node's status, which old store keys the region's stores are off.
//
// A node writes C/retired/R/KEY/N (create-only, written by node N only) once
// none of its stores may run on store key KEY, a key of its bundle that is
// not the active one. Only the active key is ever handed to a store (or,
// while a store may be on two keys, the newer of those two), and a key that
// stopped being active never becomes active again, so the marker stays true
// for good: it is never rewritten or removed.
//
// A store-key rotation lists C/retired/R/KEY/ once per old key of a region's
// bundle (O(regions x old keys), not O(nodes)). A node with a marker for
// every old key of its bundle runs only on the active key: its status is
// not read. Only a node still behind (a missed restart, a start not
// confirmed) is read as before. After every node has restarted and
// confirmed, a rotation is 2 store requests per node (read, replace).

func retiredPrefix(c, r, keyID string) string { return c + "/retired/" + r + "/" + keyID + "/" }

// publishRetired writes a marker for each old key of kr's bundle that none
// of the node's stores may run on (kr's records, as this host keeps them),
// unless meta records it written. It is best effort: a marker not written
// only makes the next store-key rotation read this node's status.
func publishRetired(ctx context.Context, s store.Store, o UnlockOptions, kr *keyring.Keyring, meta *cacheMeta) {
	if kr == nil || meta == nil || len(kr.StoreWrap.KeyIDs) < 2 {
		return
	}
	needed := kr.NeededStoreKeys()
	// Forget markers of keys the bundle no longer holds: no rotation asks.
	n := len(meta.Retired)
	meta.Retired = slices.DeleteFunc(meta.Retired, func(id string) bool { return !slices.Contains(kr.StoreWrap.KeyIDs, id) })
	wrote := len(meta.Retired) != n
	for _, id := range kr.StoreWrap.KeyIDs[1:] {
		if slices.Contains(needed, id) || slices.Contains(meta.Retired, id) {
			continue
		}
		key := retiredPrefix(o.Cluster, o.Region, id) + o.Node
		if store.CheckKey(key) != nil {
			continue // not a key name: the rotation reads the status instead
		}
		_, err := s.CreateOnly(ctx, key, []byte("retired\n"))
		if err != nil && !errors.Is(err, store.ErrExists) {
			continue
		}
		meta.Retired, wrote = append(meta.Retired, id), true
	}
	if wrote {
		_ = writeMeta(o.Cache, meta)
	}
}

// retiredByRegion lists, for each region of docs, the markers of every old
// key of its nodes' bundles: key ID -> nodes off it.
func retiredByRegion(ctx context.Context, s store.Store, c string, docs []*nodeDoc) (map[string]map[string][]string, error) {
	type rk struct{ region, key string }
	var todo []rk
	for _, d := range docs {
		if d.kr == nil || len(d.kr.StoreWrap.KeyIDs) < 2 {
			continue
		}
		for _, id := range d.kr.StoreWrap.KeyIDs[1:] {
			if !slices.Contains(todo, rk{d.ref.Region, id}) && store.CheckKey(retiredPrefix(c, d.ref.Region, id)+"n") == nil {
				todo = append(todo, rk{d.ref.Region, id})
			}
		}
	}
	out := map[string]map[string][]string{}
	lists := make([][]string, len(todo))
	errs := make([]error, len(todo))
	parallel(len(todo), func(i int) {
		lists[i], errs[i] = s.List(ctx, retiredPrefix(c, todo[i].region, todo[i].key))
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, t := range todo {
		if out[t.region] == nil {
			out[t.region] = map[string][]string{}
		}
		for _, k := range lists[i] {
			out[t.region][t.key] = append(out[t.region][t.key], strings.TrimPrefix(k, retiredPrefix(c, t.region, t.key)))
		}
	}
	return out, nil
}

// settleIfRetired reports whether node d is off every old key of its
// bundle (a marker for each). If so, its store records copied into the
// keyring at an earlier rotation are brought up to date without its
// status: a store recorded on (or handed) an old key is on the active key
// now, in the same file format; a plain store stays plain. Records that
// are not old keys' are left as they are.
//
// A bundle of one key has no old key: nothing could be dropped, and no
// status is read. A host that starts with an empty cache reads the node's
// records from its status itself (Unlock), so the keyring's copy of them
// needs no refresh here.
func settleIfRetired(d *nodeDoc, retired map[string][]string) bool {
	kr := d.kr
	if len(kr.StoreWrap.KeyIDs) < 2 {
		return true
	}
	old := kr.StoreWrap.KeyIDs[1:]
	for _, id := range old {
		if !slices.Contains(retired[id], d.ref.Node) {
			return false
		}
	}
	for _, r := range kr.Unrecorded.MayBeOn() {
		if slices.Contains(old, r.ID) {
			return false // the operator's own record names an old key: read the status
		}
	}
	active := kr.StoreWrap.KeyIDs[0]
	for i, st := range kr.Stores {
		for _, r := range st.MayBeOn() {
			if slices.Contains(old, r.ID) {
				kr.Stores[i].On, kr.Stores[i].Handed = keyring.KeyRef{ID: active, Format: r.Format}, nil
				break
			}
		}
	}
	return true
}
