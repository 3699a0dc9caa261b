package commands

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// revokeStoreRun is revoke --store: mark every selected keyring revoked
// with a compare-and-swap, act on the KMS, then wait up to --wait-acks for
// each node's status to acknowledge its purge (exit 10 listing the others;
// running it again checks again).
func revokeStoreRun(ctx context.Context, cmd *cobra.Command, f *Factory, p printer, o *RevokeOptions) error {
	t, err := storeTargetOf(cmd)
	if err != nil {
		return err
	}
	switch o.KMSAction {
	case kmsActionNone, kmsActionDisable, kmsActionSchedule:
	default:
		return usageError("use --kms-action none, disable or schedule-deletion", "unknown --kms-action %q", o.KMSAction)
	}
	waitAcks, _ := cmd.Flags().GetDuration("wait-acks")
	if o.DryRun {
		return revokeStorePlan(ctx, f, p, o, t, waitAcks)
	}
	ttl, _ := cmd.Flags().GetDuration("lease-ttl")
	wait, _ := cmd.Flags().GetDuration("lease-wait")
	if err := confirm(f, fmt.Sprintf("revoke CMEK access of cluster %q in %s", t.Cluster, t.URI), t.Cluster, o.Yes); err != nil {
		return err
	}
	s, err := openStore(ctx, f, t.URI)
	if err != nil {
		return err
	}
	defer s.Close()
	sess := f.newSession()
	rep := revokeReport{ClusterID: t.Cluster}
	revs, err := cluster.MarkRevoked(ctx, s, cluster.RevokeOptions{Cluster: t.Cluster, Regions: t.Regions, Nodes: t.Nodes, Reason: o.Reason, Now: f.Now,
		Lease: cluster.LeaseOptions{TTL: ttl, Wait: wait, Holder: operator(), Now: f.Now}})
	var uris []string
	for _, r := range revs {
		res := "revoked at " + r.At.UTC().Format(time.RFC3339) + ": " + o.Reason
		if r.Already {
			res = "already revoked on " + r.At.UTC().Format(time.RFC3339)
		}
		if r.Ref.Node != "" {
			rep.Steps = append(rep.Steps, revokeStep{Step: "1 mark keyring revoked", Target: r.Ref.String(), Result: res})
		}
		if r.CMEKURI != "" && !slices.Contains(uris, r.CMEKURI) {
			uris = append(uris, r.CMEKURI)
		}
	}
	if err != nil {
		_ = p.print(rep, revokeTable(rep))
		return err
	}
	for _, u := range uris {
		step := revokeStep{Step: "2 KMS action: " + o.KMSAction, Target: redact(u), Result: "key left as it is"}
		if o.KMSAction != kmsActionNone {
			k, err := sess.Open(u)
			if err != nil {
				return err
			}
			a, ok := provider.AsAdmin(k)
			if !ok {
				return usageError("use --kms-action none and act on the key with its KMS's tools", "cmekctl cannot administer %s (the keyrings are marked revoked)", redact(u))
			}
			var st provider.KeyState
			if o.KMSAction == kmsActionDisable {
				st, err = a.Disable(ctx)
			} else {
				st, err = a.ScheduleDeletion(ctx, o.PendingDays)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w (the keyrings are marked revoked)", o.KMSAction, redact(u), err)
			}
			step.Result, step.KMSCalls = "key is now "+string(st.State), "1 "+o.KMSAction
		}
		rep.Steps = append(rep.Steps, step)
	}
	unacked, err := cluster.WaitAcks(ctx, s, t.Cluster, revs, waitAcks, 0)
	for _, r := range revs {
		res := "purge acknowledged"
		if slices.Contains(unacked, r.Ref) {
			res = "NOT acknowledged: the node purges at its next unlock, or through cmekctl node agent"
		}
		rep.Steps = append(rep.Steps, revokeStep{Step: "3 node acknowledgement", Target: r.Ref.String(), Result: res})
	}
	rep.KMSCalls = sess.Counts()
	if perr := p.print(rep, revokeTable(rep)); perr != nil {
		return perr
	}
	return err
}

// revokeStorePlan is revoke --dry-run --store: the keyrings it would mark,
// the KMS action, the acknowledgements it would wait for; it reads the
// keyrings and writes nothing (no lease, no keyring, no KMS call).
func revokeStorePlan(ctx context.Context, f *Factory, p printer, o *RevokeOptions, t storeTarget, waitAcks time.Duration) error {
	s, err := openStore(ctx, f, t.URI)
	if err != nil {
		return err
	}
	defer s.Close()
	revs, err := cluster.PlanRevoke(ctx, s, cluster.RevokeOptions{Cluster: t.Cluster, Regions: t.Regions, Nodes: t.Nodes})
	if err != nil {
		return err
	}
	rep := revokeReport{ClusterID: t.Cluster, DryRun: true}
	var uris []string
	for _, r := range revs {
		res := "would mark revoked: " + o.Reason
		if r.Already {
			res = "already revoked on " + r.At.UTC().Format(time.RFC3339) + "; would leave it as it is"
		}
		rep.Steps = append(rep.Steps, revokeStep{Step: "1 mark keyring revoked", Target: r.Ref.String(), Result: res})
		if r.CMEKURI != "" && !slices.Contains(uris, r.CMEKURI) {
			uris = append(uris, r.CMEKURI)
		}
	}
	for _, u := range uris {
		rep.Steps = append(rep.Steps, kmsActionPlan(u, o.KMSAction))
	}
	wait := "would check once"
	if waitAcks > 0 {
		wait = "would wait up to " + waitAcks.String()
	}
	for _, r := range revs {
		rep.Steps = append(rep.Steps, revokeStep{Step: "3 node acknowledgement", Target: r.Ref.String(), Result: wait + " for its purge"})
	}
	return p.print(rep, revokeTable(rep))
}

func addRevokeStoreFlags(cmd *cobra.Command) {
	addStoreFlags(cmd)
	addLeaseFlags(cmd)
	cmd.Flags().Duration("wait-acks", 0, "with --store: wait this long for every node to acknowledge its purge (0: check once); unacknowledged nodes exit 10")
}
