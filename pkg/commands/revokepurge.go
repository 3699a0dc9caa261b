package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// repurgeRun is revoke on keyrings that are all revoked already. It makes
// no KMS call and marks nothing again, but runs step 1 again: a key file
// that appeared in a recorded unlock directory (or an --unlock-dir) since
// the revocation, such as a stray copy verify-destroyed found, is purged.
// Exit 0 when it purged something (listed in the report); 8
// (revoked-keyring) when nothing was left to purge, and nothing changed.
func repurgeRun(f *Factory, p printer, g *keyring.Group, o *RevokeOptions) error {
	r := g.Nodes[0].KR.Revoked
	already := fmt.Sprintf("every keyring given is already revoked (first on %s: %s)", r.At.UTC().Format(time.RFC3339), r.Reason)
	left := 0
	for _, n := range g.Nodes {
		left += len(keyring.PurgeList(n.KR, o.UnlockDirs...))
	}
	nothing := func() error {
		return exitf(ExitRevokedKeyring, "%s, and no file is left in the directories unlock recorded; nothing was changed", already)
	}
	if left == 0 {
		return nothing()
	}
	rep := revokeReport{ClusterID: g.Cluster, DryRun: o.DryRun}
	skipped := []revokeStep{
		{Step: "2 KMS action: " + o.KMSAction, Target: "-", Result: "skipped: " + already + "; act on the key with cmekctl kms"},
		{Step: "3 mark keyring revoked", Target: "-", Result: "skipped: " + already},
	}
	if o.DryRun {
		for _, n := range g.Nodes {
			files := keyring.PurgeList(n.KR, o.UnlockDirs...)
			rep.Steps = append(rep.Steps, revokeStep{Step: "1 purge unlocked key files", Target: n.Store.Dir, Result: fmt.Sprintf("would overwrite and remove %d file(s)", len(files)) + listFiles(files) + alreadyRevoked(n)})
		}
		rep.Steps = append(rep.Steps, skipped...)
		return p.print(rep, revokeTable(rep))
	}
	if err := confirm(f, fmt.Sprintf("overwrite and remove %d file(s) left in the unlock directories of revoked cluster %q", left, g.Cluster), g.Cluster, o.Yes); err != nil {
		return err
	}
	now, total := f.Now().UTC(), 0
	for _, n := range g.Nodes {
		step, purged, err := purgeNode(n, now, o.UnlockDirs)
		if err != nil {
			_ = p.print(rep, revokeTable(rep))
			return err
		}
		total += purged
		rep.Steps = append(rep.Steps, step)
	}
	rep.Steps = append(rep.Steps, skipped...)
	if err := p.print(rep, revokeTable(rep)); err != nil {
		return err
	}
	if total == 0 {
		return nothing()
	}
	return nil
}

// purgeNode is revoke's step 1 on one node. A keyring already revoked is
// saved only when a record gains its purge time.
func purgeNode(n *keyring.Node, now time.Time, extra []string) (revokeStep, int, error) {
	unpurged := 0
	for _, u := range n.KR.Unlocks {
		if u.Purged.IsZero() {
			unpurged++
		}
	}
	purged, err := keyring.PurgeUnlocked(n.KR, now, extra...)
	if err != nil {
		return revokeStep{}, len(purged), fmt.Errorf("purge unlocked key files of %s: %w (%d purged before it%s)", n.Store.Dir, err, len(purged), listFiles(purged))
	}
	if n.KR.Revoked != nil && unpurged > 0 {
		if err := n.Store.Save(n.KR); err != nil {
			return revokeStep{}, len(purged), fmt.Errorf("record the purge in %s: %w", n.Store.Dir, err)
		}
	}
	step := revokeStep{Step: "1 purge unlocked key files", Target: n.Store.Dir, Files: purged,
		Result: fmt.Sprintf("%d file(s) overwritten and removed", len(purged)) + listFiles(purged) + alreadyRevoked(n)}
	return step, len(purged), nil
}

func listFiles(files []string) string {
	if len(files) == 0 {
		return ""
	}
	return ": " + strings.Join(files, ", ")
}

func alreadyRevoked(n *keyring.Node) string {
	if n.KR.Revoked == nil {
		return ""
	}
	return " (keyring already revoked on " + n.KR.Revoked.At.UTC().Format(time.RFC3339) + ")"
}
