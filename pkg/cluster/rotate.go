package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// RotateOptions select and tune a rotation in a shared store.
type RotateOptions struct {
	Cluster string
	Regions []string // narrow to these regions (none: all)
	Nodes   []string // narrow to these nodes (none: all)
	Op      string   // keyring.OpRotate*
	Rotate  keyring.RotateOptions
	By      string // the operator, recorded in the intent
	Lease   LeaseOptions
	// Crash, if set, is called at each step of the protocol (tests kill
	// the process there).
	Crash func(step string)
}

func (o *RotateOptions) crash(step string) {
	if o.Crash != nil {
		o.Crash(step)
	}
}

type nodeDoc struct {
	ref NodeRef
	kr  *keyring.Keyring
	ver store.Version
}

// Rotate runs a rotation through the intent protocol: take the lease; read
// the intent (pending with another operation: refuse; the same one:
// resume); read the keyrings; make the KMS calls; record the intent as
// pending with the wraps; replace each keyring with a compare-and-swap (a
// failed compare is read again: last_op equal to this operation means the
// write landed and only its answer was lost); mark the intent done;
// release. A crash anywhere is resumed by running it again, with the
// recorded wraps and no new wrap. Store requests: 2 per node (read,
// replace), plus a few per operation; a store-key rotation also lists the
// retired-key markers (one list per old key of each region's bundle) and
// reads the status of each node still behind on an old key.
func Rotate(ctx context.Context, s store.Store, env keyring.Env, o RotateOptions) (*keyring.Result, error) {
	lease, err := AcquireLease(ctx, s, o.Cluster, o.Op, o.Lease)
	if err != nil {
		return nil, err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	o.crash("leased")

	var in Intent
	iver, err := getJSON(ctx, s, intentKey(o.Cluster), FormatIntent, &in)
	haveIntent := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	res := &keyring.Result{Op: o.Op}
	resume := haveIntent && in.State == IntentPending
	if resume && in.Op != o.Op {
		return nil, fmt.Errorf("%w: %q %s was interrupted (started %s by %s): run cmekctl %s --store with the same cluster to finish it first", keyring.ErrPending, in.Op, in.ID, in.Started.Format("2006-01-02T15:04:05Z"), in.By, in.Op)
	}
	var refs []NodeRef
	if resume {
		for _, n := range in.Nodes {
			i := slices.Index([]byte(n), '/')
			refs = append(refs, NodeRef{n[:i], n[i+1:]})
		}
	} else {
		refs, err = selectNodes(ctx, s, o.Cluster, o.Regions, o.Nodes)
		if err != nil {
			return nil, err
		}
	}
	docs, err := readAll(ctx, s, o.Cluster, refs, o.Op == keyring.OpRotateStoreKey)
	if err != nil {
		return nil, err
	}
	bundles := map[string]*keyring.Bundle{}
	defer func() {
		for _, b := range bundles {
			b.Wipe()
		}
	}()
	byRegion := map[string][]*nodeDoc{}
	var regions []string
	var kept []*nodeDoc
	for _, d := range docs {
		if d.kr.Revoked != nil {
			return nil, fmt.Errorf("%s %s: %w: nothing is rotated", s, d.ref, keyring.ErrRevoked)
		}
		if !resume && o.Op == keyring.OpRotateDataKey && o.Rotate.IfOlderThan > 0 {
			if age := utc(env.Now).Sub(d.kr.ActiveDataKey().Created); age < o.Rotate.IfOlderThan {
				res.Nodes = append(res.Nodes, keyring.NodeResult{Dir: s.String(), Region: d.ref.Region, Node: d.ref.Node, Action: keyring.ActionSkipped,
					Detail: fmt.Sprintf("data key is %s old, younger than %s", age.Round(time.Second), o.Rotate.IfOlderThan)})
				continue
			}
		}
		kept = append(kept, d)
		if byRegion[d.ref.Region] == nil {
			regions = append(regions, d.ref.Region)
		}
		byRegion[d.ref.Region] = append(byRegion[d.ref.Region], d)
	}
	docs = kept
	if len(docs) == 0 {
		return res, nil // nothing due: no intent, no KMS call
	}
	if resume {
		res.Resumed = true
		// One unwrap per region whose nodes still need the bundle: the
		// recorded new wrap (store-key), or the region's current wrap
		// (data-key). A CMEK rotation needs none: the wraps are recorded.
		for _, r := range regions {
			if o.Op == keyring.OpRotateCMEK || !slices.ContainsFunc(byRegion[r], func(d *nodeDoc) bool { return d.kr.LastOp != in.ID }) {
				continue
			}
			w, ok := in.Wraps[r]
			if !ok {
				w = newestWrap(byRegion[r])
			}
			b, err := keyring.UnwrapBundle(ctx, env, o.Cluster, r, w)
			if err != nil {
				return nil, fmt.Errorf("region %s: %w", r, err)
			}
			bundles[r] = b
		}
	} else {
		in = Intent{Format: FormatIntent, ID: keyring.NewOpID(), Op: o.Op, State: IntentPending, Started: utc(env.Now), By: o.By, Wraps: map[string]keyring.StoreWrap{}}
		var mu sync.Mutex
		var errs []error
		parallel(len(regions), func(i int) {
			r := regions[i]
			krs := make([]*keyring.Keyring, len(byRegion[r]))
			for j, d := range byRegion[r] {
				krs[j] = d.kr
			}
			b, w, err := keyring.PlanKeyrings(ctx, env, o.Cluster, r, krs, o.Op, o.Rotate)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("region %s: %w", r, err))
				return
			}
			if b != nil {
				bundles[r] = b
			}
			if w.Wrapped != nil {
				in.Wraps[r] = w
			}
		})
		if len(errs) > 0 {
			return res, errors.Join(errs...)
		}
		for _, d := range docs {
			in.Nodes = append(in.Nodes, d.ref.String())
		}
		in.NewCMEK = o.Rotate.NewCMEK
		o.crash("planned")
		if haveIntent {
			iver, err = s.ReplaceIfUnchanged(ctx, intentKey(o.Cluster), marshal(in), iver)
		} else {
			iver, err = s.CreateOnly(ctx, intentKey(o.Cluster), marshal(in))
		}
		if err != nil {
			if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
				return res, fmt.Errorf("%w: another operator recorded an intent at the same time: run the command again", keyring.ErrPending)
			}
			return res, fmt.Errorf("record the intent: %w (no keyring was changed)", err)
		}
	}
	res.OpID = in.ID
	o.crash("intent")
	results := make([]keyring.NodeResult, len(docs))
	refsOf := make([]NodeRef, len(docs))
	for i, d := range docs {
		refsOf[i] = d.ref
	}
	perRegion(refsOf, func(i int) {
		results[i] = applyDoc(ctx, s, env, o, in, docs[i], bundles[docs[i].ref.Region])
	})
	res.Nodes = append(res.Nodes, results...)
	if f := res.Failed(); f > 0 {
		return res, fmt.Errorf("%w: %d of %d nodes failed; run the same command again to finish (intent %s in %s)", keyring.ErrPartial, f, len(docs), in.ID, s)
	}
	if err := lease.Lost(); err != nil {
		return res, err
	}
	o.crash("applied")
	in.State, in.Done = IntentDone, utc(env.Now)
	if _, err := s.ReplaceIfUnchanged(ctx, intentKey(o.Cluster), marshal(in), iver); err != nil {
		var cur Intent
		if _, gerr := getJSON(ctx, s, intentKey(o.Cluster), FormatIntent, &cur); gerr == nil && cur.ID == in.ID && cur.State == IntentDone {
			return res, nil // our write landed; its answer was lost (or another operator finished it)
		}
		return res, fmt.Errorf("every node is done, but the intent could not be marked done: %w; run the same command again", err)
	}
	return res, nil
}

// applyDoc replaces one node's keyring with a compare-and-swap, reading it
// again after a failed compare.
func applyDoc(ctx context.Context, s store.Store, env keyring.Env, o RotateOptions, in Intent, d *nodeDoc, b *keyring.Bundle) keyring.NodeResult {
	r := keyring.NodeResult{Dir: s.String(), Region: d.ref.Region, Node: d.ref.Node, Action: keyring.ActionRotated}
	fail := func(err error) keyring.NodeResult {
		r.Action, r.Err, r.Error = "failed", err, err.Error()
		return r
	}
	kr, ver := d.kr, d.ver
	for attempt := 0; ; attempt++ {
		if kr.LastOp == in.ID {
			if attempt == 0 {
				r.Action, r.Detail = "already done", "finished by an earlier run"
			}
			return r
		}
		if kr.Revoked != nil {
			return fail(fmt.Errorf("%w since this rotation began", keyring.ErrRevoked))
		}
		if err := keyring.ApplyOp(env, kr, o.Op, in.ID, b, in.Wraps); err != nil {
			return fail(err)
		}
		data, err := keyring.Marshal(kr)
		if err != nil {
			return fail(err)
		}
		_, err = s.ReplaceIfUnchanged(ctx, keyringKey(o.Cluster, d.ref.Region, d.ref.Node), data, ver)
		if err == nil {
			return r
		}
		if attempt >= 2 || (!errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrUnavailable)) {
			return fail(err)
		}
		// Read again: if our write landed and only its answer was lost,
		// last_op says so above; otherwise apply to what is there now.
		kr, ver, err = getKeyring(ctx, s, o.Cluster, d.ref.Region, d.ref.Node)
		if err != nil {
			return fail(err)
		}
		if kr.LastOp == in.ID {
			r.Detail = "the write had landed: its answer was lost, or another operator applied the same intent"
			return r
		}
	}
}

// readAll reads the keyrings; with stores, also what each node's stores may
// still run on (a store-key rotation keeps those keys; the other rotations
// drop no key): from the retired-key markers, one list per old key of a
// region's bundle, and, for a node without a marker for each old key, from
// its status (its own record of what it was handed and started on).
func readAll(ctx context.Context, s store.Store, c string, refs []NodeRef, stores bool) ([]*nodeDoc, error) {
	docs := make([]*nodeDoc, len(refs))
	errs := make([]error, len(refs))
	perRegion(refs, func(i int) {
		kr, ver, err := getKeyring(ctx, s, c, refs[i].Region, refs[i].Node)
		docs[i], errs[i] = &nodeDoc{ref: refs[i], kr: kr, ver: ver}, err
	})
	if err := errors.Join(errs...); err != nil || !stores {
		return docs, err
	}
	retired, err := retiredByRegion(ctx, s, c, docs)
	if err != nil {
		return nil, err
	}
	perRegion(refs, func(i int) {
		if settleIfRetired(docs[i], retired[refs[i].Region]) {
			return
		}
		st, err := ReadStatus(ctx, s, c, refs[i].Region, refs[i].Node)
		switch {
		case err == nil && len(st.Stores) > 0:
			docs[i].kr.Stores = st.Stores
		case err != nil && !errors.Is(err, store.ErrNotFound):
			errs[i] = err
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return docs, nil
}

func newestWrap(docs []*nodeDoc) keyring.StoreWrap {
	w := docs[0].kr.StoreWrap
	for _, d := range docs[1:] {
		if d.kr.StoreWrap.Generation > w.Generation {
			w = d.kr.StoreWrap
		}
	}
	return w
}
