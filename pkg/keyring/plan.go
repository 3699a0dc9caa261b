package keyring

import (
	"fmt"
	"slices"
	"time"
)

// PlanNode is what an operation would do to one node.
type PlanNode struct {
	Dir    string `json:"keyring"`
	Region string `json:"region"`
	Node   string `json:"node"`
	Action string `json:"action"` // one of PlanActions (actions.go)
	Detail string `json:"detail,omitempty"`
}

// PlanRegion is what an operation would do in one region, with its KMS
// calls by kind.
type PlanRegion struct {
	Region string `json:"region"`
	CMEK   string `json:"cmek_uri"`
	Unwrap int    `json:"unwrap"`
	Wrap   int    `json:"wrap"`
}

// Plan is an operation's plan: what --dry-run prints. Rotate makes exactly
// these KMS calls.
type Plan struct {
	Op      string       `json:"op"`
	Resume  bool         `json:"resume"`
	OpID    string       `json:"op_id,omitempty"`
	Regions []PlanRegion `json:"regions"`
	Nodes   []PlanNode   `json:"nodes"`
}

// Calls sums the plan's KMS calls.
func (p *Plan) Calls() (wrap, unwrap int) {
	for _, r := range p.Regions {
		wrap += r.Wrap
		unwrap += r.Unwrap
	}
	return wrap, unwrap
}

// PlanRotate says what Rotate would do, without a KMS call or a write.
func PlanRotate(g *Group, op string, opt RotateOptions, now time.Time) (*Plan, error) {
	if err := g.CheckNotRevoked(); err != nil {
		return nil, err
	}
	j, err := g.FindJournal()
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: op, Regions: []PlanRegion{}, Nodes: []PlanNode{}}
	if j != nil {
		if j.Op != op {
			return nil, fmt.Errorf("%w: %q was interrupted: run cmekctl %s with the same keyrings to finish it first", ErrPending, j.Op, j.Op)
		}
		p.Resume, p.OpID = true, j.ID
	}
	for _, region := range g.Regions {
		rp := PlanRegion{Region: region, CMEK: newest(g.ByRegion(region)).KR.StoreWrap.CMEKURI}
		var todo []*Node
		for _, n := range g.ByRegion(region) {
			pn := PlanNode{Dir: n.Store.Dir, Region: region, Node: n.KR.Node, Action: WouldRotate}
			switch {
			case j != nil && !slices.Contains(j.Nodes, n.Store.Dir):
				pn.Action, pn.Detail = "skip", "not part of the interrupted rotation"
			case j != nil && n.KR.LastOp == j.ID:
				pn.Action, pn.Detail = "skip", "already done by the interrupted rotation"
			case j == nil && op == OpRotateDataKey && opt.IfOlderThan > 0 && now.Sub(n.KR.ActiveDataKey().Created) < opt.IfOlderThan:
				pn.Action, pn.Detail = "skip", fmt.Sprintf("data key is %s old, younger than %s", now.Sub(n.KR.ActiveDataKey().Created).Round(time.Second), opt.IfOlderThan)
			default:
				todo = append(todo, n)
			}
			p.Nodes = append(p.Nodes, pn)
		}
		if len(todo) > 0 {
			// One unwrap per distinct bundle (more than one in a split region).
			bundles := len(distinctBundles(todo))
			switch {
			case j != nil && op == OpRotateCMEK:
				// The journal holds the new wrap: nothing to ask the KMS.
			case j != nil && op == OpRotateStoreKey:
				rp.Unwrap = 1
			case op == OpRotateDataKey:
				rp.Unwrap = bundles
			case op == OpRotateCMEK && bundles > 1:
				return nil, splitError(region, op, todo)
			default:
				rp.Unwrap, rp.Wrap = bundles, 1
				if op == OpRotateCMEK && opt.NewCMEK != "" {
					rp.CMEK = opt.NewCMEK
				}
			}
		}
		p.Regions = append(p.Regions, rp)
	}
	return p, nil
}
