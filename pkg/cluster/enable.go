package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// Enable creates the cluster record (once) and the keyrings of a region's
// nodes in the store: one KMS wrap, then one create-only write per node.
// When some of the nodes' keyrings are already there (an enable that
// stopped part way), the others join their store key (one unwrap, no
// wrap); when all are, it is refused before any KMS call.
func Enable(ctx context.Context, s store.Store, env keyring.Env, c, region, cmek string, nodes []string) (*keyring.Result, error) {
	if err := CheckNames(append([]string{c, region}, nodes...)...); err != nil {
		return nil, err
	}
	var exists []string
	var missing []string
	var src *keyring.Keyring
	for _, n := range nodes {
		kr, _, err := getKeyring(ctx, s, c, region, n)
		switch {
		case err == nil:
			exists = append(exists, n)
			if src == nil || kr.StoreWrap.Generation > src.StoreWrap.Generation {
				src = kr
			}
		case errors.Is(err, store.ErrNotFound):
			missing = append(missing, n)
		default:
			return nil, err
		}
	}
	if len(missing) == 0 {
		return nil, fmt.Errorf("%s: %w for every node given (%v) of region %s, cluster %s: nothing was changed (use cmekctl status --store, or rotate)", s, keyring.ErrAlreadyEnabled, exists, region, c)
	}
	var krs []*keyring.Keyring
	var err error
	resumed := src != nil
	if resumed {
		// An earlier enable of this region stopped part way: the missing
		// nodes join the store key the others have (one unwrap, no wrap).
		if cmek != "" && cmek != src.StoreWrap.CMEKURI {
			return nil, fmt.Errorf("%s: %w for node(s) %v of region %s under CMEK key %s, not the one given: nothing was changed", s, keyring.ErrAlreadyEnabled, exists, region, src.StoreWrap.CMEKURI)
		}
		krs, err = keyring.JoinRegion(ctx, env, src, missing)
	} else {
		krs, err = keyring.NewRegionKeyrings(ctx, env, c, region, cmek, nodes)
	}
	if err != nil {
		return nil, err
	}
	now := krs[0].EnabledAt
	if _, err := s.CreateOnly(ctx, clusterKey(c), marshal(Record{Format: FormatCluster, ClusterID: c, Created: now})); err != nil && !errors.Is(err, store.ErrExists) {
		return nil, err
	}
	res := &keyring.Result{Op: keyring.OpEnable, Resumed: resumed, Nodes: make([]keyring.NodeResult, len(krs))}
	parallel(len(krs), func(i int) {
		kr := krs[i]
		r := keyring.NodeResult{Dir: s.String(), Region: region, Node: kr.Node, Action: keyring.ActionEnabled}
		data, err := keyring.Marshal(kr)
		if err == nil {
			_, err = s.CreateOnly(ctx, keyringKey(c, region, kr.Node), data)
		}
		if err != nil {
			r.Action, r.Err, r.Error = "failed", err, err.Error()
		}
		res.Nodes[i] = r
	})
	for _, n := range exists {
		res.Nodes = append(res.Nodes, keyring.NodeResult{Dir: s.String(), Region: region, Node: n, Action: keyring.ActionAlreadyEnabled})
	}
	if f := res.Failed(); f > 0 {
		return res, fmt.Errorf("%w: %d of %d keyrings were not written to %s; run the same command again: the missing nodes join the region's store key", keyring.ErrPartial, f, len(krs), s)
	}
	return res, nil
}

// Writers bounds the concurrent store requests of one operation per
// region: regions proceed side by side, so a rotation of 3 regions takes
// about the time of one.
const Writers = 32

// parallel runs fn(0..n-1) with at most Writers at once.
func parallel(n int, fn func(i int)) { parallelN(n, Writers, fn) }

// perRegion runs fn over refs with at most Writers at once in each region
// and store.MaxConcurrent in all: every region starts at once and none
// waits behind another's nodes.
func perRegion(refs []NodeRef, fn func(i int)) {
	var order []string
	byRegion := map[string][]int{}
	for i, r := range refs {
		if byRegion[r.Region] == nil {
			order = append(order, r.Region)
		}
		byRegion[r.Region] = append(byRegion[r.Region], i)
	}
	all := make(chan struct{}, store.MaxConcurrent)
	var wg sync.WaitGroup
	for _, r := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := byRegion[r]
			parallelN(len(idx), Writers, func(j int) {
				all <- struct{}{}
				defer func() { <-all }()
				fn(idx[j])
			})
		}()
	}
	wg.Wait()
}

// parallelN runs fn(0..n-1) with at most limit at once.
func parallelN(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

func utc(now func() time.Time) time.Time {
	if now == nil {
		return time.Now().UTC()
	}
	return now().UTC()
}
