package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Operation names (also the journal's op and the audit log's verb).
const (
	OpEnable         = "enable"
	OpRotateDataKey  = "rotate data-key"
	OpRotateStoreKey = "rotate store-key"
	OpRotateCMEK     = "rotate cmek"
)

// NodeResult is what an operation did on one node.
type NodeResult struct {
	Dir    string `json:"keyring"`
	Region string `json:"region"`
	Node   string `json:"node"`
	Action string `json:"action"` // one of ResultActions (actions.go)
	Detail string `json:"detail,omitempty"`
	Err    error  `json:"-"`
	Error  string `json:"error,omitempty"`
}

// Result is what an operation did.
type Result struct {
	Op      string       `json:"op"`
	OpID    string       `json:"op_id,omitempty"`
	Resumed bool         `json:"resumed"`
	Nodes   []NodeResult `json:"nodes"`
}

// Failed counts nodes that failed.
func (r *Result) Failed() int {
	n := 0
	for _, x := range r.Nodes {
		if x.Err != nil {
			n++
		}
	}
	return n
}

// ErrPartial is returned when some nodes failed; the journal stays, and
// running the command again finishes the work.
var ErrPartial = errors.New("some nodes failed")

// parallelism bounds concurrent regions and nodes.
const parallelism = 64

// forEach runs fn on items with bounded parallelism.
func forEach[T any](items []T, fn func(T)) {
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(it)
		}()
	}
	wg.Wait()
}

func finish(env Env, kr *Keyring, s Store, action string, err error) NodeResult {
	r := NodeResult{Dir: s.Dir, Region: kr.Region, Node: kr.Node, Action: action}
	if err != nil {
		r.Action, r.Err, r.Error = ActionFailed, err, err.Error()
	}
	if env.Progress != nil {
		env.Progress(kr.Region, kr.Node, err)
	}
	return r
}

// RotateOptions tune a rotation.
type RotateOptions struct {
	// IfOlderThan: rotate data keys only when the active one is older.
	IfOlderThan time.Duration
	// NewCMEK: for rotate cmek, re-wrap under this key instead of the
	// current key's newest version. Applies to every region given.
	NewCMEK string
}

// Rotate rotates the data keys, store keys or CMEK wrapping of the group.
// Per region it makes one KMS unwrap, plus one wrap for store-key and CMEK
// rotations, whatever the number of nodes. Before writing any keyring it
// writes an intent journal; an interrupted rotation is finished by running
// the same command again, and never doubled.
func Rotate(ctx context.Context, env Env, g *Group, op string, opt RotateOptions) (*Result, error) {
	if err := g.CheckNotRevoked(); err != nil {
		return nil, err
	}
	if opt.NewCMEK != "" {
		if err := recordable(opt.NewCMEK); err != nil {
			return nil, err
		}
	}
	j, err := g.FindJournal()
	if err != nil {
		return nil, err
	}
	res := &Result{Op: op}
	bundles := map[string]*Bundle{}
	defer func() {
		for _, b := range bundles {
			b.Wipe()
		}
	}()
	var mu sync.Mutex
	if j != nil {
		if j.Op != op {
			return nil, fmt.Errorf("%w: %q was interrupted (journal %s/%s): run cmekctl %s with the same keyrings to finish it first", ErrPending, j.Op, j.dir, JournalName, j.Op)
		}
		res.Resumed = true
	} else {
		j = &Journal{ID: newID()[:16], Op: op, Started: env.now(), Wraps: map[string]StoreWrap{}}
		var skipped []NodeResult
		var errs []error
		forEach(g.Regions, func(region string) {
			nodes := g.ByRegion(region)
			todo, skip := nodes, []NodeResult(nil)
			if op == OpRotateDataKey && opt.IfOlderThan > 0 {
				todo = nil
				for _, n := range nodes {
					age := env.now().Sub(n.KR.ActiveDataKey().Created)
					if age < opt.IfOlderThan {
						skip = append(skip, NodeResult{Dir: n.Store.Dir, Region: region, Node: n.KR.Node, Action: ActionSkipped,
							Detail: fmt.Sprintf("data key is %s old, younger than %s", age.Round(time.Second), opt.IfOlderThan)})
					} else {
						todo = append(todo, n)
					}
				}
			}
			var b *Bundle
			var w StoreWrap
			var err error
			if len(todo) > 0 {
				b, w, err = planRegion(ctx, env, g.Cluster, region, todo, op, opt)
			}
			mu.Lock()
			defer mu.Unlock()
			skipped = append(skipped, skip...)
			if err != nil {
				errs = append(errs, fmt.Errorf("region %s: %w", region, err))
				return
			}
			if b != nil {
				bundles[region] = b
			}
			if w.Wrapped != nil {
				j.Wraps[region] = w
			}
			for _, n := range todo {
				j.Nodes = append(j.Nodes, n.Store.Dir)
			}
		})
		res.Nodes = append(res.Nodes, skipped...)
		if len(errs) > 0 {
			return res, errors.Join(errs...)
		}
		if len(j.Nodes) == 0 {
			return res, nil
		}
		slices.Sort(j.Nodes)
		if err := g.writeJournal(j); err != nil {
			return res, fmt.Errorf("write intent journal: %w (no keyring was changed)", err)
		}
	}
	res.OpID = j.ID
	if res.Resumed {
		var missing []string
		for _, d := range j.Nodes {
			if !slices.ContainsFunc(g.Nodes, func(n *Node) bool { return n.Store.Dir == d }) {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			return res, fmt.Errorf("%w: the interrupted %s %s also covers %s: give every keyring it covers (journal %s/%s)", ErrPending, op, j.ID, strings.Join(missing, ", "), j.dir, JournalName)
		}
	}
	var todo []*Node
	for _, n := range g.Nodes {
		if !slices.Contains(j.Nodes, n.Store.Dir) {
			continue
		}
		if n.KR.LastOp == j.ID {
			res.Nodes = append(res.Nodes, NodeResult{Dir: n.Store.Dir, Region: n.KR.Region, Node: n.KR.Node, Action: ActionAlreadyDone, Detail: "finished by the interrupted run"})
			continue
		}
		todo = append(todo, n)
	}
	// On resume, unwrap what the remaining nodes need: one call per region.
	var errs []error
	for _, region := range g.Regions {
		if bundles[region] != nil || op == OpRotateCMEK || !slices.ContainsFunc(todo, func(n *Node) bool { return n.KR.Region == region }) {
			continue
		}
		var b *Bundle
		var err error
		if w, ok := j.Wraps[region]; ok {
			b, err = UnwrapBundle(ctx, env, g.Cluster, region, w)
			if b != nil {
				b.meta = storeKeyMeta(g.ByRegion(region))
			}
		} else {
			left := slices.DeleteFunc(slices.Clone(todo), func(n *Node) bool { return n.KR.Region != region })
			b, _, err = unwrapRegion(ctx, env, g.Cluster, region, left)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("region %s: %w", region, err))
			continue
		}
		bundles[region] = b
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	results := make([]NodeResult, len(todo))
	forEach(indexes(len(todo)), func(i int) {
		n := todo[i]
		err := applyNode(env, n, op, bundles[n.KR.Region], j)
		if err == nil {
			err = n.Store.Save(n.KR)
		}
		results[i] = finish(env, n.KR, n.Store, ActionRotated, err)
	})
	res.Nodes = append(res.Nodes, results...)
	if f := res.Failed(); f > 0 {
		return res, fmt.Errorf("%w: %d of %d nodes failed; run the same command again to finish (journal %s/%s)", ErrPartial, f, len(todo), j.dir, JournalName)
	}
	if err := g.removeJournal(j); err != nil {
		return res, fmt.Errorf("every node is done, but the journal could not be removed: %w", err)
	}
	return res, nil
}

// planRegion makes the KMS calls of a fresh rotation of one region: it
// returns the bundle to apply and, for store-key and CMEK rotations, the new
// wrap, of the generation after the newest node's. Nodes of a split region
// (different bundles: reconcile.go) are unwrapped once per bundle; a
// store-key rotation brings them onto one; a CMEK rotation is refused.
func planRegion(ctx context.Context, env Env, cluster, region string, nodes []*Node, op string, opt RotateOptions) (*Bundle, StoreWrap, error) {
	src := newest(nodes)
	if op == OpRotateCMEK && len(distinctBundles(nodes)) > 1 {
		return nil, StoreWrap{}, splitError(region, op, nodes)
	}
	b, actives, err := unwrapRegion(ctx, env, cluster, region, nodes)
	if err != nil {
		return nil, StoreWrap{}, err
	}
	if op != OpRotateDataKey {
		pinRetiring(ctx, env, nodes)
	}
	gen := src.KR.StoreWrap.Generation + 1
	switch op {
	case OpRotateDataKey:
		return b, StoreWrap{}, nil
	case OpRotateStoreKey:
		nb, err := rotatedBundle(b, actives, nodes)
		if err != nil {
			return nil, StoreWrap{}, err
		}
		key, err := env.Open(src.KR.StoreWrap.CMEKURI)
		if err != nil {
			nb.Wipe()
			return nil, StoreWrap{}, err
		}
		w, err := wrapBundle(ctx, key, cluster, region, nb, gen, env.now())
		if err != nil {
			nb.Wipe()
			return nil, StoreWrap{}, err
		}
		return nb, w, nil
	case OpRotateCMEK:
		uri := src.KR.StoreWrap.CMEKURI
		if opt.NewCMEK != "" {
			uri = opt.NewCMEK
		}
		key, err := env.Open(uri)
		if err != nil {
			b.Wipe()
			return nil, StoreWrap{}, err
		}
		defer b.Wipe()
		w, err := wrapBundle(ctx, key, cluster, region, b, gen, env.now())
		if err != nil {
			return nil, StoreWrap{}, err
		}
		return nil, w, nil
	}
	b.Wipe()
	return nil, StoreWrap{}, fmt.Errorf("unknown operation %q", op)
}

// applyNode changes one node's keyring in memory.
func applyNode(env Env, n *Node, op string, b *Bundle, j *Journal) error {
	kr, now := n.KR, env.now()
	switch op {
	case OpRotateDataKey:
		active := kr.ActiveDataKey()
		kek := b.Key(kr.ActiveStoreKey().ID)
		if kek == nil {
			return fmt.Errorf("active store key %s is not in the region's bundle", short(kr.ActiveStoreKey().ID))
		}
		active.State = StateRetired
		kr.DataKeys = append(kr.DataKeys, newDataKey(kr, kr.ActiveStoreKey().ID, kek, now))
	case OpRotateStoreKey:
		w := j.Wraps[kr.Region]
		if !slices.Contains(w.KeyIDs, kr.ActiveStoreKey().ID) {
			return fmt.Errorf("the node's active store key %s is not in the new bundle: it is of another lineage", short(kr.ActiveStoreKey().ID))
		}
		for _, id := range kr.NeededStoreKeys() {
			if !slices.Contains(w.KeyIDs, id) {
				return fmt.Errorf("a store of the node may run on store key %s, which the new bundle lacks: nothing was changed on this node; run the rotation with every keyring of the region", short(id))
			}
		}
		newID, kek := b.IDs[0], b.Keys[0]
		for i := range kr.DataKeys {
			d := &kr.DataKeys[i]
			dk, err := openDataKey(kr, b, d)
			if err != nil {
				return err
			}
			d.Wrapped = sealLocal(kek, dk, DataBinding(kr.ClusterID, kr.Region, kr.Node, d.ID, newID))
			d.StoreKeyID = newID
			Wipe(dk)
		}
		for i := range kr.StoreKeys {
			s := &kr.StoreKeys[i]
			switch {
			case slices.Contains(w.KeyIDs[1:], s.ID):
				s.State = StatePrevious
			case s.State != StateRetired:
				s.State, s.Retired = StateRetired, now
			}
		}
		addBundleKeys(kr, w, b.meta)
		kr.StoreKeys = append(kr.StoreKeys, StoreKey{ID: newID, State: StateActive, Created: now})
		kr.RetireStoreWrap(kr.StoreWrap)
		kr.StoreWrap = w
	case OpRotateCMEK:
		w := j.Wraps[kr.Region]
		if !slices.Equal(w.KeyIDs, kr.StoreWrap.KeyIDs) {
			return fmt.Errorf("the node's store keys differ from its region's: it is of another lineage")
		}
		if !bytes.Equal(kr.StoreWrap.Wrapped, w.Wrapped) {
			kr.RetireStoreWrap(kr.StoreWrap)
		}
		kr.StoreWrap = w
	}
	kr.LastOp, kr.Updated = j.ID, now
	return nil
}

// Describe asks the KMS for the state of the keyring's CMEK key.
func Describe(ctx context.Context, env Env, kr *Keyring) (provider.KeyState, error) {
	key, err := env.Open(kr.StoreWrap.CMEKURI)
	if err != nil {
		return provider.KeyState{}, err
	}
	return key.Describe(ctx)
}
