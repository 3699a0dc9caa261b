package commands

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
)

// statusStoreRun is status --store.
func statusStoreRun(ctx context.Context, cmd *cobra.Command, f *Factory, p printer) error {
	t, err := storeTargetOf(cmd)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, f, t.URI)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := cluster.ReadCluster(ctx, s, t.Cluster, t.Regions, t.Nodes)
	if err != nil {
		return err
	}
	rt := table{Title: "Regions of cluster " + t.Cluster, Headers: []string{"region", "active store key", "nodes", "running it", "revoked", "unacknowledged"}}
	for _, r := range st.Regions {
		rt.Rows = append(rt.Rows, []string{r.Region, short(r.ActiveKey), fmt.Sprint(r.Nodes), fmt.Sprint(r.Running), fmt.Sprint(r.Revoked), fmt.Sprint(r.Unacked)})
	}
	nt := table{Title: "Nodes", Headers: []string{"region", "node", "generation", "handed", "revoked", "pending"}}
	for _, n := range st.Nodes {
		rev := "no"
		if n.Revoked {
			rev = "yes"
		}
		nt.Rows = append(nt.Rows, []string{n.Region, n.Node, fmt.Sprint(n.Generation), short(n.Handed), rev, n.Pending})
	}
	tables := []table{rt, nt}
	if st.Intent != nil {
		tables = append(tables, table{Title: "Pending intent", Headers: []string{"id", "op", "started", "by"},
			Rows: [][]string{{st.Intent.ID, st.Intent.Op, p.when(st.Intent.Started), st.Intent.By}}})
	}
	return p.print(st, tables...)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	if id == "" {
		return "-"
	}
	return id
}
