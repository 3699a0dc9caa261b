package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/backup"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
	"github.com/cmekctl/cmekctl/pkg/verify"
)

// VerifyOptions are verify-destroyed's options.
type VerifyOptions struct {
	Keyrings   []string
	UnlockDirs []string
	Samples    []string
	Accept     string
	Cloud      CloudOptions
}

func newCmdVerify(f *Factory, p func() printer) *cobra.Command {
	opts := &VerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify-destroyed --keyring DIR... [--sample FILE...] [--accept revoked]",
		Short: "Gather evidence that nothing can be decrypted any more, and give a verdict",
		Long: `Gather evidence, check by check, that the cluster's key material can no
longer be used, and give a verdict that can be filed with an audit:
  - for every CMEK key identity pinned when it wrapped (AWS key ARN with its
    account and region, Vault cluster and namespace, GCP resource name), the
    KMS's answer about that identity, asked in its own place;
  - a real unwrap attempt of every wrapped store key and every backup key,
    including every wrap the keyrings' history kept (a rotate cmek,
    rotate store-key or backup-keys rewrap replaced it, but older keyring
    copies and backup headers still hold it);
  - a real decrypt attempt of every --sample data file, and of the header
    wraps of every --sample backup file (only under CMEK keys the keyrings
    know; a wrap under another key is reported as not checked);
  - a search of the keyring directories for key-like files, and of every
    directory unlock recorded (it records the directory before it writes a
    key) and every --unlock-dir, for any file left behind (dotfiles and
    temporary files included); a CockroachDB store-key file there whose key
    no keyring given knows is another cluster's: reported FOREIGN, it does
    not decide the verdict;
  - a node start attempt per node.

The evidence rule: DESTROYED needs positive proof, from the KMS that holds
it, about the pinned key. "Not found", "access denied" or an identity
mismatch is never proof: a KMS asked in the wrong place (another account,
region, endpoint, Vault cluster or namespace) says the same. Vault transit
never proves destruction (transit/restore brings a deleted key back).
See docs/verify-destroyed.md.

Verdicts (the weakest check decides):
  DESTROYED     every deciding check is positive proof about a pinned key            (exit 0)
  REVOKED       nothing could be unwrapped, but there is no proof of destruction     (exit 30; 0 with --accept revoked)
  ACCESSIBLE    something still unwrapped or decrypted: the drill failed             (exit 31)
  INCONCLUSIVE  a transient error, or a KMS asked in another place than the pinned  (exit 32)
                one; never counted as proof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return verifyRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringArrayVar(&opts.Keyrings, "keyring", nil, "keyring directory (repeat for several nodes)")
	addSelectors(cmd)
	cmd.Flags().StringArrayVar(&opts.Samples, "sample", nil, "a data file to try to decrypt, or a backup file whose header wraps to try (repeat)")
	cmd.Flags().StringArrayVar(&opts.UnlockDirs, "unlock-dir", nil, "another directory unlock wrote keys to, to search too (repeat)")
	cmd.Flags().StringVar(&opts.Accept, "accept", "", "accept a weaker verdict as success: revoked (for a revocation drill)")
	_ = cmd.MarkFlagRequired("keyring")
	addCloudFlags(f, cmd, &opts.Cloud, cloudRead, cloudHelp["verify"], "keyring", "sample", "unlock-dir")
	_ = cmd.RegisterFlagCompletionFunc("accept", cobra.FixedCompletions([]string{"revoked"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type verifyReport struct {
	ClusterID string `json:"cluster_id"`
	verify.Report
	KMSCalls KMSCalls `json:"kms_calls"`
}

func verifyRun(ctx context.Context, f *Factory, p printer, o *VerifyOptions) error {
	if o.Cloud.Cloud {
		return cloudVerifyRun(ctx, f, p, &o.Cloud, o.Accept)
	}
	if o.Accept != "" && o.Accept != "revoked" {
		return usageError("use --accept revoked", "unknown --accept %q", o.Accept)
	}
	g, err := keyring.LoadGroup(ctx, f.stores(o.Keyrings), false)
	if err != nil {
		return err
	}
	// Samples are checked before anything is tried: one that is not ours
	// is bad input, not evidence.
	samples := map[string]sample{}
	for _, path := range o.Samples {
		h, err := sampleHeader(path)
		if err != nil {
			return err
		}
		if h.backup != nil && h.backup.ClusterID != g.Cluster {
			return exitf(ExitForeign, "sample %s is a backup of cluster %q, not %q: give that cluster's keyrings", path, h.backup.ClusterID, g.Cluster)
		}
		samples[path] = h
	}
	s := f.newSession()
	rep, err := collectEvidence(ctx, f, s, g, o, samples)
	if err != nil {
		return err
	}
	out := verifyReport{ClusterID: g.Cluster, Report: rep, KMSCalls: s.Counts()}
	if err := p.print(out, verifyTables(p, rep)...); err != nil {
		return err
	}
	if p.text() {
		fmt.Fprintf(f.IO.ErrOut, "verdict: %s (%s)\n", rep.Verdict, rep.Reason)
	}
	return verdictExit(rep.Verdict, o.Accept)
}

func verdictExit(verdict, accept string) error {
	switch verdict {
	case verify.Destroyed:
		return nil
	case verify.Revoked:
		if accept == "revoked" {
			return nil
		}
		return &silentError{ExitVerdictRevoked}
	case verify.Accessible:
		return &silentError{ExitAccessible}
	}
	return &silentError{ExitInconclusive}
}

func verifyTables(p printer, rep verify.Report) []table {
	t := table{Headers: []string{"target", "check", "result", "class", "kms error", "at"}}
	for _, c := range rep.Checks {
		t.Rows = append(t.Rows, []string{c.Target, c.Check, c.Result, c.Class, c.KMSError, p.when(c.At)})
	}
	t.Rows = append(t.Rows, []string{"VERDICT", rep.Verdict, rep.Reason, "", "", p.when(rep.FinishedAt)})
	return []table{t}
}

// sample is a --sample file's header: a data file's or a backup's.
type sample struct {
	data   keyring.DataHeader
	backup *backup.Header
}

func sampleHeader(path string) (sample, error) {
	fh, err := os.Open(path)
	if err != nil {
		return sample{}, exitf(ExitUsage, "sample %s: %v", path, err)
	}
	defer fh.Close()
	if bh, err := backup.ReadHeader(fh); err == nil {
		return sample{backup: bh}, nil
	} else if !errors.Is(err, backup.ErrNotBackup) {
		return sample{}, fmt.Errorf("sample %s: %w", path, err)
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return sample{}, exitf(ExitUsage, "sample %s: %v", path, err)
	}
	h, _, err := keyring.ReadDataHeader(fh)
	if err != nil {
		return sample{}, fmt.Errorf("sample %s: %w: pass data files written by cmekctl data encrypt, or backups written by cmekctl backup encrypt", path, err)
	}
	return sample{data: h}, nil
}

func sampleCheck(ctx context.Context, env keyring.Env, n *keyring.Node, path string, now func() time.Time) verify.Check {
	c := verify.Check{Target: path, Check: "decrypt sample"}
	fh, err := os.Open(path)
	if err != nil {
		c.Result, c.Outcome, c.At = err.Error(), verify.OutInconclusive, now().UTC()
		return c
	}
	defer fh.Close()
	sl, err := keyring.NewSealer(ctx, env, n.KR)
	if err != nil {
		return verify.ErrorCheck(path, "decrypt sample", err, now().UTC())
	}
	defer sl.Close()
	if _, err := sl.Open(io.Discard, fh, stream.Options{}); err != nil {
		c.Result, c.Outcome, c.At = "failed: "+err.Error(), verify.OutRevoked, now().UTC()
		return c
	}
	c.Result, c.Outcome, c.At = "DECRYPTED: the sample is still readable", verify.OutAccessible, now().UTC()
	return c
}

// collectEvidence runs every check of verify-destroyed on the group and
// decides the verdict.
func collectEvidence(ctx context.Context, f *Factory, s *kmsSession, g *keyring.Group, o *VerifyOptions, samples map[string]sample) (verify.Report, error) {
	now := func() time.Time { return f.Now() }
	rep := verify.Report{StartedAt: f.Now().UTC()}
	add := func(c verify.Check) { rep.Checks = append(rep.Checks, c) }

	// The KMS's view of every CMEK key identity pinned by a wrap, current or
	// in the history: proof of destruction is asked about the pinned
	// identity, never the URI alone.
	wraps := evidenceWraps(g)
	proven := proveAll(ctx, s, wraps, now, add)
	// A real unwrap of every distinct wrap.
	unwrapped := map[string]verify.Check{} // wrapped bytes → result
	for _, t := range wraps {
		k, err := s.Open(t.uri)
		var c verify.Check
		if err != nil {
			c = verify.ErrorCheck(t.target, t.check, err, f.Now().UTC())
		} else {
			c = verify.UnwrapCheck(ctx, k, t.w, t.aad, t.target, t.check, proven[t.key()], now)
		}
		unwrapped[string(t.w.Ciphertext)] = c
		add(c)
	}
	// A real decrypt of every sample.
	env := f.env(s)
	for _, path := range o.Samples {
		if bh := samples[path].backup; bh != nil {
			for _, c := range backupSampleChecks(ctx, s, g, path, bh, wraps, proven, now) {
				add(c)
			}
			continue
		}
		h := samples[path].data
		var node *keyring.Node
		for _, n := range g.Nodes {
			if n.KR.ClusterID == h.ClusterID && n.KR.Region == h.Region && n.KR.Node == h.Node {
				node = n
			}
		}
		if node == nil {
			return rep, exitf(ExitForeign, "sample %s was sealed on node %q of region %q, cluster %q: give that node's keyring too", path, h.Node, h.Region, h.ClusterID)
		}
		add(sampleCheck(ctx, env, node, path, now))
	}
	// Key material left on disk. A store-key file in an unlock directory
	// whose key no keyring given knows is another cluster's: reported, not
	// evidence against this one.
	seenFile := map[string]bool{}
	known := g.StoreKeyIDs()
	for _, n := range g.Nodes {
		unlocked := keyring.UnlockedFiles(n.KR, o.UnlockDirs...)
		var left []string
		for _, l := range keyring.LeftoverKeyFiles(n.Store, n.KR, o.UnlockDirs...) {
			if !seenFile[l] {
				seenFile[l] = true
				left = append(left, l)
			}
		}
		if len(left) == 0 {
			add(verify.Check{Target: n.Store.Dir, Check: "search for unwrapped key files", Result: "none found", Outcome: verify.OutPass, At: f.Now().UTC()})
		}
		for _, l := range left {
			if id := keyring.StoreKeyFileID(l); id != "" && !known[id] && slices.Contains(unlocked, l) {
				add(verify.Check{Target: l, Check: "search for unwrapped key files", Result: foreignKeyFile(id), Outcome: verify.OutPass, At: f.Now().UTC()})
				continue
			}
			add(verify.Check{Target: l, Check: "search for unwrapped key files", Result: "FOUND: a file is still in an unlock directory, or a key-like file in the keyring directory", Outcome: verify.OutAccessible, At: f.Now().UTC()})
		}
	}
	// A node start per node.
	for _, n := range g.Nodes {
		c := verify.Check{Target: fmt.Sprintf("node %s (region %s)", n.KR.Node, n.KR.Region), Check: "node start (unlock)", At: f.Now().UTC()}
		u := unwrapped[string(n.KR.StoreWrap.Wrapped)]
		switch {
		case u.Outcome != verify.OutAccessible:
			c.Result, c.Outcome, c.Class, c.KMSError = "fails: the store key does not unwrap", verify.OutPass, u.Class, u.KMSError
		case n.KR.Revoked != nil:
			c.Result, c.Outcome = "refused by the keyring's revocation mark, but the KMS still unwraps", verify.OutPass
		default:
			c.Result, c.Outcome = "WOULD START: the keyring is not revoked and the store key unwraps", verify.OutAccessible
		}
		add(c)
	}
	rep.FinishedAt = f.Now().UTC()
	rep.Verdict, rep.Reason = verify.Decide(rep.Checks)
	return rep, nil
}

// foreignKeyFile is the result of a search that found another cluster's
// store-key file.
func foreignKeyFile(id string) string {
	return "FOREIGN: a CockroachDB store-key file of store key " + keyring.Short(id) +
		", which no keyring given knows: another cluster's, not evidence about this one's keys " +
		"(if these keyrings were restored from an older copy, it may be this cluster's newer key: give the newest copies)"
}
