package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// PlanRotate says what Rotate would do (rotate --dry-run --store): per
// region the KMS calls by kind, per node the action. It reads the store
// and writes nothing: no lease, no intent, no KMS call.
func PlanRotate(ctx context.Context, s store.Store, o RotateOptions, now time.Time) (*keyring.Plan, error) {
	var in Intent
	_, err := getJSON(ctx, s, intentKey(o.Cluster), FormatIntent, &in)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	resume := err == nil && in.State == IntentPending
	if resume && in.Op != o.Op {
		return nil, fmt.Errorf("%w: %q %s was interrupted: run cmekctl %s --store with the same cluster to finish it first", keyring.ErrPending, in.Op, in.ID, in.Op)
	}
	var refs []NodeRef
	if resume {
		for _, n := range in.Nodes {
			i := slices.Index([]byte(n), '/')
			refs = append(refs, NodeRef{n[:i], n[i+1:]})
		}
	} else if refs, err = selectNodes(ctx, s, o.Cluster, o.Regions, o.Nodes); err != nil {
		return nil, err
	}
	docs, err := readAll(ctx, s, o.Cluster, refs, false)
	if err != nil {
		return nil, err
	}
	p := &keyring.Plan{Op: o.Op, Resume: resume, Regions: []keyring.PlanRegion{}, Nodes: []keyring.PlanNode{}}
	if resume {
		p.OpID = in.ID
	}
	var regions []string
	todo := map[string]int{}
	cmek := map[string]string{}
	for _, d := range docs {
		if d.kr.Revoked != nil {
			return nil, fmt.Errorf("%s %s: %w: nothing would be rotated", s, d.ref, keyring.ErrRevoked)
		}
		if !slices.Contains(regions, d.ref.Region) {
			regions = append(regions, d.ref.Region)
			cmek[d.ref.Region] = d.kr.StoreWrap.CMEKURI
		}
		pn := keyring.PlanNode{Dir: s.String(), Region: d.ref.Region, Node: d.ref.Node, Action: keyring.WouldRotate}
		switch {
		case resume && d.kr.LastOp == in.ID:
			pn.Action, pn.Detail = "skip", "already done by the interrupted rotation"
		case !resume && o.Op == keyring.OpRotateDataKey && o.Rotate.IfOlderThan > 0 && now.Sub(d.kr.ActiveDataKey().Created) < o.Rotate.IfOlderThan:
			pn.Action, pn.Detail = "skip", fmt.Sprintf("data key is %s old, younger than %s", now.Sub(d.kr.ActiveDataKey().Created).Round(time.Second), o.Rotate.IfOlderThan)
		default:
			todo[d.ref.Region]++
		}
		p.Nodes = append(p.Nodes, pn)
	}
	for _, r := range regions {
		rp := keyring.PlanRegion{Region: r, CMEK: cmek[r]}
		if todo[r] > 0 {
			switch {
			case resume && o.Op == keyring.OpRotateCMEK:
				// The intent holds the new wrap.
			case resume, o.Op == keyring.OpRotateDataKey:
				rp.Unwrap = 1
			default:
				rp.Unwrap, rp.Wrap = 1, 1
				if o.Op == keyring.OpRotateCMEK && o.Rotate.NewCMEK != "" {
					rp.CMEK = o.Rotate.NewCMEK
				}
			}
		}
		p.Regions = append(p.Regions, rp)
	}
	return p, nil
}

// PlanRevoke says what MarkRevoked would do (revoke --dry-run --store): it
// reads the selected keyrings and returns each as MarkRevoked would
// (Already for one revoked before; At and Rev then as recorded), writing
// nothing: no lease, no keyring, no KMS call.
func PlanRevoke(ctx context.Context, s store.Store, o RevokeOptions) ([]Revoked, error) {
	refs, err := selectNodes(ctx, s, o.Cluster, o.Regions, o.Nodes)
	if err != nil {
		return nil, err
	}
	out := make([]Revoked, len(refs))
	errs := make([]error, len(refs))
	perRegion(refs, func(i int) {
		kr, ver, err := getKeyring(ctx, s, o.Cluster, refs[i].Region, refs[i].Node)
		if err != nil {
			errs[i] = err
			return
		}
		out[i] = Revoked{Ref: refs[i], CMEKURI: kr.StoreWrap.CMEKURI, Wrap: kr.StoreWrap, Rev: ver.Rev}
		if kr.Revoked != nil {
			out[i].At, out[i].Already = kr.Revoked.At, true
		}
	})
	return out, errors.Join(errs...)
}
