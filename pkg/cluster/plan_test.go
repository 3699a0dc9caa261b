package cluster_test

import (
	"context"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/cluster"
)

// revoke --dry-run --store: the plan lists every selected keyring (one
// already revoked as such) and writes nothing; the revocation that follows
// marks exactly the ones the plan said it would.
func TestPlanRevokeMatches(t *testing.T) {
	ctx := context.Background()
	f := enabled(t, 2, "r1", "r2")
	if _, err := cluster.MarkRevoked(ctx, f.st, cluster.RevokeOptions{Cluster: "c1", Nodes: []string{"r2-n1"}, Reason: "first", Lease: cluster.LeaseOptions{Holder: "t"}}); err != nil {
		t.Fatal(err)
	}
	f.st.reset()
	plan, err := cluster.PlanRevoke(ctx, f.st, cluster.RevokeOptions{Cluster: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if c := f.st.counts(); c["create"]+c["replace"] != 0 || c["get"] != 4 {
		t.Fatalf("the plan made %v, want 4 gets and no write", c)
	}
	if k := f.kms.total(); k.Wrap+k.Unwrap != 0 {
		t.Fatalf("the plan called the KMS: %+v", f.kms.total())
	}
	done, err := cluster.MarkRevoked(ctx, f.st, cluster.RevokeOptions{Cluster: "c1", Reason: "second", Lease: cluster.LeaseOptions{Holder: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 4 || len(done) != 4 {
		t.Fatalf("plan %d nodes, revocation %d", len(plan), len(done))
	}
	for i := range plan {
		if plan[i].Ref != done[i].Ref || plan[i].Already != done[i].Already || plan[i].CMEKURI != done[i].CMEKURI {
			t.Fatalf("node %d: plan %+v, revocation %+v", i, plan[i], done[i])
		}
	}
	if n := countAlready(plan); n != 1 {
		t.Fatalf("the plan says %d already revoked, want 1", n)
	}
}

func countAlready(rs []cluster.Revoked) int {
	n := 0
	for _, r := range rs {
		if r.Already {
			n++
		}
	}
	return n
}
