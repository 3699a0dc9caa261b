package commands

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// ExitCheckFailed is status --check's own code: something needs an
// operator (an unprotected node, an overdue rotation, a node mid-rotation or
// behind its region, a revoked keyring, a CMEK key not enabled).
const ExitCheckFailed = 80

// OutputPrometheus is status's node_exporter textfile output.
const OutputPrometheus = "prometheus"

// checkOutputFor is checkOutput, with -o prometheus for status.
func checkOutputFor(verb, format string) error {
	if format == OutputPrometheus {
		if verb == "status" {
			return nil
		}
		return usageError("use -o table, -o json or -o yaml; -o prometheus is for cmekctl status", "-o prometheus: %s has no metrics", verb)
	}
	return checkOutput(format)
}

// statusProblems are what status --check fails on, one line each.
func statusProblems(rep statusReport, _ time.Time) []string {
	var out []string
	for _, u := range rep.Unprotected {
		out = append(out, fmt.Sprintf("region %s node %s is not protected: run %s", u.Region, u.Node, u.Next))
	}
	for _, n := range rep.Nodes {
		where := fmt.Sprintf("region %s node %s", n.Region, n.Node)
		switch {
		case n.Revoked != nil:
			out = append(out, where+": keyring revoked")
			continue
		case n.MidRotation != "":
			out = append(out, where+": mid-rotation ("+n.MidRotation+"): run the same rotation again to finish it")
		case n.BehindRegion > 0:
			out = append(out, fmt.Sprintf("%s: store key generation %d, behind the region's %d%s", where, n.Generation, n.BehindRegion, reconcileRun(rep, n.Region)))
		case n.SplitRegion:
			out = append(out, fmt.Sprintf("%s: another node of the region holds another store key of generation %d%s", where, n.Generation, reconcileRun(rep, n.Region)))
		}
		if n.RotationOverdue {
			out = append(out, fmt.Sprintf("%s: data-key rotation overdue since %s: run cmekctl rotate data-key", where, n.NextRotationDue.UTC().Format(time.RFC3339)))
		}
	}
	for _, k := range rep.KMS {
		switch {
		case k.State == nil:
			out = append(out, fmt.Sprintf("CMEK key %s: %s", k.URI, k.Error))
		case k.State.State != provider.StateEnabled:
			out = append(out, fmt.Sprintf("CMEK key %s is %s", k.URI, k.State.State))
		}
	}
	return out
}

// writePrometheus writes status as node_exporter textfile metrics.
func writePrometheus(w io.Writer, rep statusReport, clusterID string, now time.Time) error {
	var b strings.Builder
	metric := func(name, help string, rows []promRow) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		sort.Slice(rows, func(i, j int) bool { return rows[i].labels < rows[j].labels })
		for _, r := range rows {
			fmt.Fprintf(&b, "%s{%s} %s\n", name, r.labels, strconv.FormatFloat(r.v, 'f', -1, 64))
		}
	}
	b01 := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	var dkAge, skAge, due, overdue, mid, behind, gen, revoked, protected []promRow
	for _, n := range rep.Nodes {
		l := promLabels("cluster", n.ClusterID, "region", n.Region, "node", n.Node)
		for _, d := range n.DataKeys {
			if d.State == keyring.StateActive {
				dkAge = append(dkAge, promRow{l, now.Sub(d.Created).Seconds()})
			}
		}
		for _, s := range n.StoreKeys {
			if s.State == keyring.StateActive {
				skAge = append(skAge, promRow{l, now.Sub(s.Created).Seconds()})
			}
		}
		due = append(due, promRow{l, n.NextRotationDue.Sub(now).Seconds()})
		overdue = append(overdue, promRow{l, b01(n.RotationOverdue)})
		mid = append(mid, promRow{l, b01(n.MidRotation != "")})
		behind = append(behind, promRow{l, b01(n.BehindRegion > 0 || n.SplitRegion)})
		gen = append(gen, promRow{l, float64(n.Generation)})
		revoked = append(revoked, promRow{l, b01(n.Revoked != nil)})
		protected = append(protected, promRow{l, 1})
	}
	for _, u := range rep.Unprotected {
		protected = append(protected, promRow{promLabels("cluster", clusterID, "region", u.Region, "node", u.Node), 0})
	}
	metric("cmekctl_data_key_age_seconds", "Age of the node's active data key.", dkAge)
	metric("cmekctl_store_key_age_seconds", "Age of the node's active store key.", skAge)
	metric("cmekctl_data_key_rotation_due_seconds", "Seconds until the node's data-key rotation is due (negative: overdue).", due)
	metric("cmekctl_data_key_rotation_overdue", "1 if the node's data-key rotation is overdue.", overdue)
	metric("cmekctl_mid_rotation", "1 if an interrupted rotation is pending on the node.", mid)
	metric("cmekctl_store_key_behind", "1 if another node of the region holds a newer store-key generation, or another store key of the same one (reconcile: rotate store-key of the whole region).", behind)
	metric("cmekctl_store_key_generation", "The node's store-key generation.", gen)
	metric("cmekctl_keyring_revoked", "1 if the node's keyring is marked revoked.", revoked)
	metric("cmekctl_node_protected", "1 if the node has a keyring (CMEK enabled), 0 if the cluster config lists it without one.", protected)
	var stores, onActive []promRow
	for _, r := range rep.Regions {
		l := promLabels("cluster", clusterID, "region", r.Region)
		stores = append(stores, promRow{l, float64(r.Stores)})
		onActive = append(onActive, promRow{l, float64(r.StoresOnActive)})
	}
	if len(stores) > 0 {
		metric("cmekctl_region_stores", "CockroachDB stores of the region's nodes.", stores)
		metric("cmekctl_region_stores_on_active_store_key", "Stores whose start on the region's active store key is confirmed (node started).", onActive)
	}
	var kms []promRow
	for _, k := range rep.KMS {
		kms = append(kms, promRow{promLabels("cmek", k.URI), b01(k.State != nil && k.State.State == provider.StateEnabled)})
	}
	if len(kms) > 0 {
		metric("cmekctl_cmek_key_enabled", "1 if the KMS says the CMEK key is enabled.", kms)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type promRow struct {
	labels string
	v      float64
}

func promLabels(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1])
		parts = append(parts, kv[i]+`="`+v+`"`)
	}
	return strings.Join(parts, ",")
}

// statusOutput prints status (a table, JSON, YAML or metrics) and, with
// --check, lists each problem on stderr and exits ExitCheckFailed if any.
func statusOutput(f *Factory, p printer, o *StatusOptions, rep statusReport, tables ...table) error {
	now := f.Now()
	var err error
	if p.format == OutputPrometheus {
		err = writePrometheus(f.IO.Out, rep, statusClusterID(f, rep), now)
	} else {
		err = p.print(rep, tables...)
	}
	if err != nil {
		return err
	}
	if !o.Check {
		for _, r := range rep.Regions {
			if r.Reconcile != "" {
				fmt.Fprintf(f.IO.ErrOut, "cmekctl: hint: %s\n", reconcileLine(r))
			}
		}
		return nil
	}
	problems := statusProblems(rep, now)
	for _, pr := range problems {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: check: %s\n", pr)
	}
	if len(problems) > 0 {
		return &silentError{code: ExitCheckFailed}
	}
	return nil
}

// statusClusterID is the cluster of the report's keyrings, else the
// cluster config's (every node of it unprotected).
func statusClusterID(f *Factory, rep statusReport) string {
	if len(rep.Nodes) > 0 {
		return rep.Nodes[0].ClusterID
	}
	if f.Config != nil {
		return f.Config.ClusterID
	}
	return ""
}

// checkStatusMode refuses --check and -o prometheus where status does not
// read keyrings (--store, --cloud), instead of exiting 0 unchecked.
func checkStatusMode(cmd *cobra.Command, o *StatusOptions, format string) error {
	if !o.Check && format != OutputPrometheus {
		return nil
	}
	if storeMode(cmd) == "" && !o.Cloud.Cloud {
		return nil
	}
	return usageError("run status --check or -o prometheus on the node's keyrings (--keyring, or the cluster config)",
		"status --check and -o prometheus read keyrings: not yet with --store or --cloud")
}
