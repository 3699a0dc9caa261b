package commands

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/backup"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// The backup-keys verbs (create, list, verify, rewrap, export, import).

// BackupKeysOptions are the backup-keys verbs' options.
type BackupKeysOptions struct {
	Cloud      CloudOptions
	DryRun     bool
	Keyrings   []string
	Label      string
	Regions    []string
	AllRegions bool
	Out        string
	In         string
}

func newCmdBackupKeys(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup-keys",
		Short: "Create, list, verify, rewrap, export and import backup keys",
		Long: `Backup keys are 256-bit keys, one per full backup (incrementals reuse their
full backup's key), wrapped by the CMEK key of every region that may restore
them (so the loss of one region's key does not lose the backup), never by a
store key. Restoring needs a CMEK key; a backup taken before CMEK was enabled
is not restorable.`,
	}
	sub := func(use, short string, run func(context.Context, *Factory, printer, *BackupKeysOptions) error, flags func(*cobra.Command, *BackupKeysOptions)) *cobra.Command {
		o := &BackupKeysOptions{}
		c := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error { return run(cmd.Context(), f, p(), o) },
		}
		c.Flags().StringArrayVar(&o.Keyrings, "keyring", nil, "keyring directory (repeat; one per region at least)")
		addSelectors(c)
		_ = c.MarkFlagRequired("keyring")
		if flags != nil {
			flags(c, o)
		}
		return c
	}
	cmd.AddCommand(
		sub("create --keyring DIR... [--label L] [--regions r1,r2]", "Create a backup key wrapped by each region's CMEK key", backupKeysCreate, func(c *cobra.Command, o *BackupKeysOptions) {
			c.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the KMS calls it would make (one wrap per region); change nothing")
			c.Flags().StringVar(&o.Label, "label", "", "a label for the key")
			c.Flags().StringSliceVar(&o.Regions, "regions", nil, "regions whose CMEK keys wrap it (default: every region of the keyrings given)")
			c.Long = "Create a backup key wrapped by the CMEK key of each region (one KMS wrap per\nregion), recorded in every keyring given, and print on stderr the command that\nseals a full backup under it.\n\n" + backupKeyUseHelp
		}),
		sub("list --keyring DIR... | --cloud --cluster-id ID", "List backup keys (or the Cloud's managed backups) and whether each is restorable now", backupKeysList, func(c *cobra.Command, o *BackupKeysOptions) {
			addCloudBackupFlags(f, c, &o.Cloud, "keyring")
		}),
		sub("verify --keyring DIR... [--all-regions]", "Unwrap every backup key for real: exit 50 if one is not restorable, 23 if the KMS did not answer", backupKeysVerify, func(c *cobra.Command, o *BackupKeysOptions) {
			c.Flags().BoolVar(&o.AllRegions, "all-regions", false, "unwrap with every wrapping region, not just the first that works")
		}),
		sub("rewrap --keyring DIR...", "Re-wrap backup keys under the CMEK keys' current versions", backupKeysRewrap, func(c *cobra.Command, o *BackupKeysOptions) {
			c.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the KMS calls it would make (one unwrap and one wrap per key per region); change nothing")
		}),
		sub("export --keyring DIR... --out FILE", "Write the wrapped backup keys (never plaintext) to a portable escrow file", backupKeysExport, func(c *cobra.Command, o *BackupKeysOptions) {
			c.Flags().StringVar(&o.Out, "out", "", "escrow file to write")
			_ = c.MarkFlagRequired("out")
		}),
	)
	imp := &cobra.Command{
		Use:   "import --keyring DIR... FILE",
		Short: "Import wrapped backup keys from an escrow file of the same cluster",
		Long: `Import wrapped backup keys from an escrow file of the same cluster.

An escrow file may come from anyone who can write to where it is kept, so
its CMEK URIs are never recorded or dialled: a wrap is imported only for a
region of the keyrings given and under a CMEK key those keyrings already
know (same scheme, host, path and parameters, credentials aside), and is
recorded with the keyring's own URI. A wrap under any other key is refused
(exit 6); wraps of regions with no keyring given are left out, with a note.`,
		Args: cobra.ExactArgs(1),
	}
	io := &BackupKeysOptions{}
	imp.Flags().StringArrayVar(&io.Keyrings, "keyring", nil, "keyring directory (repeat)")
	addSelectors(imp)
	_ = imp.MarkFlagRequired("keyring")
	imp.RunE = func(cmd *cobra.Command, args []string) error {
		io.In = args[0]
		return backupKeysImport(cmd.Context(), f, p(), io)
	}
	cmd.AddCommand(imp)
	return cmd
}

type backupKeyView struct {
	ID         string            `json:"id"`
	Label      string            `json:"label"`
	Created    time.Time         `json:"created"`
	Wraps      []backupWrapView  `json:"wraps"`
	Restorable bool              `json:"restorable"`
	Reason     string            `json:"reason,omitempty"`
	Unwrapped  []string          `json:"unwrapped_by,omitempty"`
	States     map[string]string `json:"cmek_states,omitempty"`
}

type backupWrapView struct {
	Region      string `json:"region"`
	CMEKURI     string `json:"cmek_uri"`
	CMEKVersion string `json:"cmek_version"`
}

type backupKeysReport struct {
	ClusterID     string          `json:"cluster_id"`
	CMEKEnabledAt time.Time       `json:"cmek_enabled_at"`
	Keys          []backupKeyView `json:"keys"`
	KMSCalls      KMSCalls        `json:"kms_calls"`
}

func loadBackupGroup(ctx context.Context, f *Factory, keyrings []string, write bool) (*keyring.Group, error) {
	return keyring.LoadGroup(ctx, f.stores(keyrings), write)
}

func enabledAt(g *keyring.Group) time.Time {
	var t time.Time
	for _, n := range g.Nodes {
		if t.IsZero() || n.KR.EnabledAt.Before(t) {
			t = n.KR.EnabledAt
		}
	}
	return t
}

func viewOf(b keyring.BackupKey) backupKeyView {
	v := backupKeyView{ID: b.ID, Label: b.Label, Created: b.Created}
	for _, w := range b.Wraps {
		v.Wraps = append(v.Wraps, backupWrapView{Region: w.Region, CMEKURI: redact(w.CMEKURI), CMEKVersion: w.CMEKVersion})
	}
	return v
}

func backupTable(p printer, rep backupKeysReport) table {
	t := table{Headers: []string{"id", "label", "created", "regions (cmek version)", "restorable", "detail"}}
	for _, k := range rep.Keys {
		var rs []string
		for _, w := range k.Wraps {
			rs = append(rs, w.Region+" (v"+w.CMEKVersion+")")
		}
		r := "no"
		if k.Restorable {
			r = "yes"
		}
		t.Rows = append(t.Rows, []string{keyring.Short(k.ID), k.Label, p.when(k.Created), strings.Join(rs, ", "), r, k.Reason})
	}
	return t
}

func backupKeysCreate(ctx context.Context, f *Factory, p printer, o *BackupKeysOptions) error {
	g, err := loadBackupGroup(ctx, f, o.Keyrings, !o.DryRun)
	if err != nil {
		return err
	}
	defer g.Close()
	if o.DryRun {
		plan := &keyring.Plan{Op: "backup-keys create", Regions: []keyring.PlanRegion{}, Nodes: []keyring.PlanNode{}}
		regions := o.Regions
		if len(regions) == 0 {
			regions = g.Regions
		}
		for _, r := range regions {
			uri, ok := g.RegionCMEK(r)
			if !ok {
				return usageError("give a keyring of that region, or drop it from --regions", "region %q has no keyring in this command", r)
			}
			plan.Regions = append(plan.Regions, keyring.PlanRegion{Region: r, CMEK: uri, Wrap: 1})
		}
		for _, n := range g.Nodes {
			plan.Nodes = append(plan.Nodes, keyring.PlanNode{Dir: n.Store.Dir, Region: n.KR.Region, Node: n.KR.Node, Action: keyring.WouldRecord, Detail: "the new backup key"})
		}
		return printPlan(p, plan)
	}
	s := f.newSession()
	bk, key, err := keyring.CreateBackupKey(ctx, f.env(s), g, o.Label, o.Regions)
	keyring.Wipe(key)
	if err != nil {
		return err
	}
	v := viewOf(bk)
	v.Restorable = true
	rep := backupKeysReport{ClusterID: g.Cluster, CMEKEnabledAt: enabledAt(g), Keys: []backupKeyView{v}, KMSCalls: s.Counts()}
	if err := p.print(rep, backupTable(p, rep)); err != nil {
		return err
	}
	printBackupNext(f, o.Keyrings, bk.ID)
	return nil
}

// backupKeysList judges each key restorable when at least one wrapping
// region's CMEK key is enabled (one Describe per key URI, no unwrap).
func backupKeysList(ctx context.Context, f *Factory, p printer, o *BackupKeysOptions) error {
	if o.Cloud.Cloud {
		return cloudBackupsRun(ctx, f, p, o.Cloud.ClusterID, &o.Cloud)
	}
	g, err := loadBackupGroup(ctx, f, o.Keyrings, false)
	if err != nil {
		return err
	}
	s := f.newSession()
	states := map[string]string{}
	state := func(uri string) string {
		if st, ok := states[uri]; ok {
			return st
		}
		v := describeView(ctx, s, uri)
		st := "ERROR " + string(v.Class)
		if v.State != nil {
			st = string(v.State.State)
		}
		states[uri] = st
		return st
	}
	rep := backupKeysReport{ClusterID: g.Cluster, CMEKEnabledAt: enabledAt(g), Keys: []backupKeyView{}}
	for _, b := range g.BackupKeys() {
		v := viewOf(b)
		v.States = map[string]string{}
		for _, w := range b.Wraps {
			st := state(w.CMEKURI)
			v.States[w.Region] = st
			if st == string(provider.StateEnabled) {
				v.Restorable = true
			}
		}
		if !v.Restorable {
			v.Reason = "no wrapping region's CMEK key is enabled"
		}
		rep.Keys = append(rep.Keys, v)
	}
	rep.KMSCalls = s.Counts()
	return p.print(rep, backupTable(p, rep))
}

func backupKeysVerify(ctx context.Context, f *Factory, p printer, o *BackupKeysOptions) error {
	g, err := loadBackupGroup(ctx, f, o.Keyrings, false)
	if err != nil {
		return err
	}
	s := f.newSession()
	env := f.env(s)
	rep := backupKeysReport{ClusterID: g.Cluster, CMEKEnabledAt: enabledAt(g), Keys: []backupKeyView{}}
	bad, unknown := 0, 0
	for _, b := range g.BackupKeys() {
		v := viewOf(b)
		regions := []string{""}
		if o.AllRegions {
			regions = nil
			for _, w := range b.Wraps {
				regions = append(regions, w.Region)
			}
		}
		var fails []string
		transient := 0
		for _, r := range regions {
			key, region, err := keyring.UnwrapBackupKey(ctx, env, g.Cluster, b, r)
			if err != nil {
				fails = append(fails, oneLine(err.Error()))
				if provider.Classify(err) == provider.Transient {
					transient++
				}
				continue
			}
			keyring.Wipe(key)
			v.Unwrapped = append(v.Unwrapped, region)
		}
		v.Restorable = len(v.Unwrapped) > 0 && (!o.AllRegions || len(fails) == 0)
		if !v.Restorable {
			bad++
			if transient == len(fails) {
				unknown++ // the KMS did not answer: no verdict on this key
			}
		}
		v.Reason = strings.Join(fails, "; ")
		if v.Reason == "" && len(v.Unwrapped) > 0 {
			v.Reason = "unwrapped by " + strings.Join(v.Unwrapped, ", ")
		}
		rep.Keys = append(rep.Keys, v)
	}
	rep.KMSCalls = s.Counts()
	if err := p.print(rep, backupTable(p, rep)); err != nil {
		return err
	}
	if bad > 0 && bad == unknown {
		// Only TRANSIENT failures: not a verdict, as the KMS's silence
		// proves nothing; the same exit as any verb the KMS did not answer.
		return exitf(ExitKMSUnavailable, "%d of %d backup keys could not be checked: the KMS did not answer", bad, len(rep.Keys))
	}
	if bad > 0 {
		return exitf(ExitNotRestorable, "%d of %d backup keys are not restorable", bad, len(rep.Keys))
	}
	return nil
}

func backupKeysRewrap(ctx context.Context, f *Factory, p printer, o *BackupKeysOptions) error {
	g, err := loadBackupGroup(ctx, f, o.Keyrings, !o.DryRun)
	if err != nil {
		return err
	}
	defer g.Close()
	if o.DryRun {
		plan := &keyring.Plan{Op: "backup-keys rewrap", Regions: []keyring.PlanRegion{}, Nodes: []keyring.PlanNode{}}
		per := map[string]int{} // region → index in plan.Regions
		for _, b := range g.BackupKeys() {
			for _, w := range b.Wraps {
				i, ok := per[w.Region]
				if !ok {
					i = len(plan.Regions)
					per[w.Region] = i
					plan.Regions = append(plan.Regions, keyring.PlanRegion{Region: w.Region, CMEK: w.CMEKURI})
				}
				plan.Regions[i].Unwrap++
				plan.Regions[i].Wrap++
			}
		}
		for _, n := range g.Nodes {
			plan.Nodes = append(plan.Nodes, keyring.PlanNode{Dir: n.Store.Dir, Region: n.KR.Region, Node: n.KR.Node, Action: keyring.WouldRecord, Detail: fmt.Sprintf("%d re-wrapped key(s)", len(g.BackupKeys()))})
		}
		return printPlan(p, plan)
	}
	s := f.newSession()
	n, err := keyring.RewrapBackupKeys(ctx, f.env(s), g)
	if err != nil {
		return err
	}
	rep := backupKeysReport{ClusterID: g.Cluster, CMEKEnabledAt: enabledAt(g), Keys: []backupKeyView{}, KMSCalls: s.Counts()}
	for _, b := range g.BackupKeys() {
		v := viewOf(b)
		v.Restorable = true
		rep.Keys = append(rep.Keys, v)
	}
	if p.text() && f.IO.IsStderrTTY() {
		fmt.Fprintf(f.IO.ErrOut, "re-wrapped %d backup key(s)\n", n)
	}
	return p.print(rep, backupTable(p, rep))
}

func toBackupWraps(ws []keyring.RegionWrap) []backup.RegionWrap {
	out := make([]backup.RegionWrap, len(ws))
	for i, w := range ws {
		out[i] = backup.RegionWrap{Region: w.Region, CMEKURI: w.CMEKURI, KeyVersion: w.CMEKVersion, Wrapped: w.Wrapped}
	}
	return out
}

func backupKeysExport(ctx context.Context, f *Factory, p printer, o *BackupKeysOptions) error {
	g, err := loadBackupGroup(ctx, f, o.Keyrings, false)
	if err != nil {
		return err
	}
	e := backup.Escrow{ClusterID: g.Cluster, Keys: []backup.EscrowKey{}}
	for _, b := range g.BackupKeys() {
		e.Keys = append(e.Keys, backup.EscrowKey{ID: b.ID, Label: b.Label, Created: b.Created, Wraps: toBackupWraps(b.Wraps)})
	}
	data, err := e.Marshal()
	if err != nil {
		return err
	}
	if err := writeOutput(f, o.Out, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	rep := struct {
		Out  string `json:"out"`
		Keys int    `json:"keys"`
	}{o.Out, len(e.Keys)}
	return p.print(rep, table{Headers: []string{"out", "keys"}, Rows: [][]string{{o.Out, fmt.Sprint(len(e.Keys))}}})
}

func backupKeysImport(ctx context.Context, f *Factory, p printer, o *BackupKeysOptions) error {
	data, err := os.ReadFile(o.In)
	if err != nil {
		return exitf(ExitUsage, "read escrow file: %v", err)
	}
	e, err := backup.ParseEscrow(data)
	if err != nil {
		return exitf(ExitCorrupt, "%s: %v", o.In, err)
	}
	g, err := loadBackupGroup(ctx, f, o.Keyrings, true)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := g.CheckEscrowCluster(e.ClusterID); err != nil {
		return err
	}
	// The escrow file's URIs name nothing: a wrap is kept only for a region
	// of these keyrings and under a CMEK key they already know, recorded
	// with the keyring's URI. Anything else is refused, never stored.
	var keys []keyring.BackupKey
	var unknown []string
	skipped := map[string]bool{}
	for _, k := range e.Keys {
		bk := keyring.BackupKey{ID: k.ID, Label: k.Label, Created: k.Created}
		for _, w := range k.Wraps {
			if _, ok := g.RegionCMEK(w.Region); !ok {
				skipped[w.Region] = true
				continue
			}
			uri, ok := g.KnownCMEK(w.Region, w.CMEKURI)
			if !ok {
				if !slices.Contains(unknown, w.Region) {
					unknown = append(unknown, w.Region)
				}
				continue
			}
			bk.Wraps = append(bk.Wraps, keyring.RegionWrap{Region: w.Region, CMEKURI: uri, CMEKVersion: w.KeyVersion, Wrapped: w.Wrapped})
		}
		if len(bk.Wraps) == 0 {
			if len(unknown) > 0 {
				return untrustedKMSError("the escrow file", unknown)
			}
			return &ExitError{Code: ExitForeign,
				Err:  fmt.Errorf("%w: backup key %s of %s has no wrap for a region of these keyrings", keyring.ErrForeign, keyring.Short(k.ID), o.In),
				Hint: "give a keyring of a region that wraps it (--keyring DIR, repeat)"}
		}
		keys = append(keys, bk)
	}
	if len(unknown) > 0 {
		return untrustedKMSError("the escrow file", unknown)
	}
	for _, r := range slices.Sorted(maps.Keys(skipped)) {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: note: region %s's wraps not imported: no keyring of region %s given (an escrow file's URIs are never recorded)\n", r, r)
	}
	s := f.newSession()
	n, err := keyring.ImportBackupKeys(f.env(s), g, e.ClusterID, keys)
	if err != nil {
		return err
	}
	rep := struct {
		Imported int `json:"imported"`
		Skipped  int `json:"already_present"`
	}{n, len(keys) - n}
	return p.print(rep, table{Headers: []string{"imported", "already present"}, Rows: [][]string{{fmt.Sprint(n), fmt.Sprint(len(keys) - n)}}})
}
