package commands

import (
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// RevokeOptions are revoke's options.
type RevokeOptions struct {
	Keyrings    []string
	KMSAction   string
	PendingDays int
	Reason      string
	DryRun      bool
	Yes         bool
	UnlockDirs  []string
	Cloud       CloudOptions
}

const (
	kmsActionNone     = "none"
	kmsActionDisable  = "disable"
	kmsActionSchedule = "schedule-deletion"
)

func newCmdRevoke(f *Factory, p func() printer) *cobra.Command {
	opts := &RevokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke --keyring DIR... [--kms-action none|disable|schedule-deletion] [--pending-days N] [--dry-run] [--yes]",
		Short: "Revoke the cluster's access to its keys (destructive)",
		Long: `Revoke CMEK access for the nodes given, in four steps:
  1. purge the key files unlock wrote in every directory it recorded
     (active.key, old-ID.key and their temporary files: unlock records the
     directory before it writes a key, so a killed unlock's are purged too;
     other files there are left, and verify-destroyed reports them), and
     every file in each --unlock-dir (overwritten, then removed);
  2. optionally act on the CMEK key in the KMS: disable (reversible) or
     schedule-deletion (after --pending-days); default none, for when the
     cluster's IAM access to the key was already removed;
  3. mark every keyring revoked (time and reason): unlock, data decrypt and
     rotations refuse from then on, even if the KMS would still answer;
  4. show that a node start now fails, and whether the KMS itself still
     unwraps the store key (if it does, remove the cluster's access to the key).

It is destructive: on a terminal it asks you to type the cluster ID; in a
script it needs --yes. --dry-run prints each step and the KMS calls it would
make, and changes nothing. Check the result with cmekctl verify-destroyed.

On keyrings already revoked, revoke runs step 1 again and nothing else (no
KMS action, no new mark): a key file that appeared in a recorded unlock
directory or an --unlock-dir since (verify-destroyed reports it ACCESSIBLE)
is overwritten and removed, and listed. Exit 0 when it purged something;
8 (revoked-keyring) when nothing was left to purge, and nothing changed.
A keyring given with others still unrevoked is purged again in step 1 too.

With --store URI --cluster-id C (see docs/multihost.md) it marks every selected
keyring in the shared store revoked with a compare-and-swap, acts on the KMS,
then waits up to --wait-acks for each node to acknowledge its purge (exit 10
lists those that have not). --dry-run with --store prints the keyrings it would
mark, the KMS action and the acknowledgements it would wait for: it reads the
keyrings and writes nothing (no lease, no keyring, no KMS call).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if storeMode(cmd) != "" {
				return revokeStoreRun(cmd.Context(), cmd, f, p(), opts)
			}
			return revokeRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringArrayVar(&opts.Keyrings, "keyring", nil, "keyring directory (repeat for several nodes)")
	addSelectors(cmd)
	cmd.Flags().StringVar(&opts.KMSAction, "kms-action", kmsActionNone, "what to do to the CMEK key: none, disable or schedule-deletion")
	cmd.Flags().IntVar(&opts.PendingDays, "pending-days", 7, "pending window for --kms-action schedule-deletion")
	cmd.Flags().StringVar(&opts.Reason, "reason", "revoked by operator", "reason recorded in the keyrings")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the plan and the KMS calls; change nothing")
	cmd.Flags().BoolVar(&opts.Yes, "yes", false, "confirm without a prompt (required in scripts)")
	cmd.Flags().StringArrayVar(&opts.UnlockDirs, "unlock-dir", nil, "another directory unlock wrote keys to, to purge too (repeat)")
	_ = cmd.MarkFlagRequired("keyring")
	addCloudFlags(f, cmd, &opts.Cloud, cloudWrite, cloudHelp["revoke"], "keyring", "kms-action", "pending-days", "reason", "unlock-dir")
	addRevokeStoreFlags(cmd)
	_ = cmd.RegisterFlagCompletionFunc("kms-action", cobra.FixedCompletions([]string{kmsActionNone, kmsActionDisable, kmsActionSchedule}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type revokeStep struct {
	Step     string   `json:"step"`
	Target   string   `json:"target"`
	Result   string   `json:"result"`
	Files    []string `json:"files,omitempty"`
	KMSCalls string   `json:"kms_calls,omitempty"`
}

type revokeReport struct {
	ClusterID string       `json:"cluster_id"`
	DryRun    bool         `json:"dry_run"`
	Steps     []revokeStep `json:"steps"`
	KMSCalls  KMSCalls     `json:"kms_calls"`
}

func revokeRun(ctx context.Context, f *Factory, p printer, o *RevokeOptions) error {
	if o.Cloud.Cloud {
		return cloudRevokeRun(ctx, f, p, &o.Cloud, o.DryRun, o.Yes)
	}
	switch o.KMSAction {
	case kmsActionNone, kmsActionDisable, kmsActionSchedule:
	default:
		return usageError("use --kms-action none, disable or schedule-deletion", "unknown --kms-action %q", o.KMSAction)
	}
	g, err := keyring.LoadGroup(ctx, f.stores(o.Keyrings), !o.DryRun)
	if err != nil {
		return err
	}
	defer g.Close()
	var todo []*keyring.Node
	for _, n := range g.Nodes {
		if n.KR.Revoked == nil {
			todo = append(todo, n)
		}
	}
	if len(todo) == 0 {
		return repurgeRun(f, p, g, o)
	}
	var uris []string
	for _, n := range todo {
		if !slices.Contains(uris, n.KR.StoreWrap.CMEKURI) {
			uris = append(uris, n.KR.StoreWrap.CMEKURI)
		}
	}
	rep := revokeReport{ClusterID: g.Cluster, DryRun: o.DryRun}
	if o.DryRun {
		for _, n := range g.Nodes {
			files := keyring.PurgeList(n.KR, o.UnlockDirs...)
			rep.Steps = append(rep.Steps, revokeStep{Step: "1 purge unlocked key files", Target: n.Store.Dir, Result: fmt.Sprintf("would overwrite and remove %d file(s)", len(files)) + listFiles(files) + alreadyRevoked(n)})
		}
		for _, u := range uris {
			rep.Steps = append(rep.Steps, kmsActionPlan(u, o.KMSAction))
		}
		for _, n := range todo {
			rep.Steps = append(rep.Steps, revokeStep{Step: "3 mark keyring revoked", Target: n.Store.Dir, Result: "would mark revoked: " + o.Reason})
		}
		for _, r := range g.Regions {
			rep.Steps = append(rep.Steps, revokeStep{Step: "4 node start attempt", Target: "region " + r, Result: "would try one unwrap, expecting failure", KMSCalls: "1 unwrap"})
		}
		return p.print(rep, revokeTable(rep))
	}
	if err := confirm(f, fmt.Sprintf("revoke CMEK access of cluster %q on %d node(s)", g.Cluster, len(todo)), g.Cluster, o.Yes); err != nil {
		return err
	}
	s := f.newSession()
	rep, err = executeRevoke(ctx, f, s, g, todo, uris, o, rep)
	rep.KMSCalls = s.Counts()
	if perr := p.print(rep, revokeTable(rep)); perr != nil {
		return perr
	}
	return err
}

// kmsActionPlan is the dry run's step for the KMS action on key u.
func kmsActionPlan(u, action string) revokeStep {
	calls, res := "0", "would leave the key as it is"
	if action != kmsActionNone {
		calls, res = "1 "+action, "would "+action+" the key"
	}
	return revokeStep{Step: "2 KMS action: " + action, Target: redact(u), Result: res, KMSCalls: calls}
}

// executeRevoke does revoke's four steps on the nodes not yet revoked.
func executeRevoke(ctx context.Context, f *Factory, s *kmsSession, g *keyring.Group, todo []*keyring.Node, uris []string, o *RevokeOptions, rep revokeReport) (revokeReport, error) {
	now := f.Now().UTC()
	// 1. Purge, on the nodes already revoked too.
	for _, n := range g.Nodes {
		step, _, err := purgeNode(n, now, o.UnlockDirs)
		if err != nil {
			return rep, fmt.Errorf("%w (no keyring was marked)", err)
		}
		rep.Steps = append(rep.Steps, step)
	}
	// 2. KMS action.
	for _, u := range uris {
		step := revokeStep{Step: "2 KMS action: " + o.KMSAction, Target: redact(u), Result: "key left as it is"}
		if o.KMSAction != kmsActionNone {
			k, err := s.Open(u)
			if err != nil {
				return rep, err
			}
			a, ok := provider.AsAdmin(k)
			if !ok {
				return rep, usageError("use --kms-action none and act on the key with its KMS's tools", "cmekctl cannot administer %s", redact(u))
			}
			var st provider.KeyState
			if o.KMSAction == kmsActionDisable {
				st, err = a.Disable(ctx)
			} else {
				st, err = a.ScheduleDeletion(ctx, o.PendingDays)
			}
			if err != nil {
				return rep, adminError(fmt.Errorf("%s %s: %w (unlocked files were purged; no keyring was marked)", o.KMSAction, redact(u), err))
			}
			step.Result, step.KMSCalls = "key is now "+string(st.State), "1 "+o.KMSAction
		}
		rep.Steps = append(rep.Steps, step)
	}
	// 3. Mark.
	for _, n := range todo {
		if err := keyring.MarkRevoked(n.KR, o.Reason, now); err != nil {
			return rep, err
		}
		if err := n.Store.Save(n.KR); err != nil {
			return rep, fmt.Errorf("mark %s revoked: %w", n.Store.Dir, err)
		}
		rep.Steps = append(rep.Steps, revokeStep{Step: "3 mark keyring revoked", Target: n.Store.Dir, Result: "revoked at " + now.Format("2006-01-02T15:04:05Z") + ": " + o.Reason})
	}
	// 4. A node start now fails; and does the KMS still unwrap?
	env := f.env(s)
	for _, r := range g.Regions {
		n := g.ByRegion(r)[0]
		res := "node start refused by the revocation mark"
		b, err := keyring.UnwrapBundle(ctx, env, n.KR.ClusterID, r, n.KR.StoreWrap)
		if err == nil {
			b.Wipe()
			res += "; WARNING: the KMS still unwraps the store key: remove the cluster's access to the CMEK key, or rerun with --kms-action disable"
		} else {
			res += "; the KMS refuses too: " + string(provider.Classify(err))
		}
		rep.Steps = append(rep.Steps, revokeStep{Step: "4 node start attempt", Target: "region " + r, Result: res, KMSCalls: "1 unwrap"})
	}
	return rep, nil
}

func revokeTable(rep revokeReport) table {
	t := table{Headers: []string{"step", "target", "result", "kms calls"}}
	for _, s := range rep.Steps {
		t.Rows = append(t.Rows, []string{s.Step, s.Target, s.Result, s.KMSCalls})
	}
	return t
}
