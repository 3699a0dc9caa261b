package commands

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// RotateOptions are the rotate verbs' options.
type RotateOptions struct {
	Op          string
	Keyrings    []string
	IfOlderThan time.Duration
	CMEK        string
	DryRun      bool
	Partial     bool
	Cloud       CloudOptions
	// root is the command tree, for the config file edit of rotate cmek
	// --cmek (nil: the config is left as it is).
	root *cobra.Command
}

func newCmdRotate(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate data keys, store keys, or the CMEK wrapping",
		Long: `Rotate one level of the key hierarchy. No rotation re-encrypts data:
  data-key   a new active data key per node; old ones are kept to read old data (no KMS wrap; one unwrap per region)
  store-key  a new store key per region; data keys are re-wrapped under it (one unwrap + one wrap per region)
  cmek       the store key re-wrapped under the CMEK key's current version, or under --cmek (one unwrap + one wrap per region)

A rotation over several nodes writes an intent journal first; if it is
interrupted, running the same command again finishes it without doubling it.

With a cluster config, a store-key or CMEK rotation of part of a region is
refused unless --partial. A region whose nodes hold different store keys
(after --partial) is reconciled by rotate store-key of every node of the
region (cmekctl rotate store-key --region R): one unwrap per distinct bundle,
then one new store key for all; every key a store may still run on is kept.
cmekctl status flags such a region and names that command. rotate cmek
--cmek NEW sets the config's cmek of each region it moved to NEW and keeps the
old key in the region's previous_cmek: with a config, a keyring that records a
key the config does not name is refused (docs/threat-model.md).`,
	}
	sub := func(op, use, short string) *cobra.Command {
		opts := &RotateOptions{Op: op}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if storeMode(cmd) != "" {
					return rotateStoreRun(cmd.Context(), cmd, f, p(), opts)
				}
				opts.root = cmd.Root()
				return rotateRun(cmd.Context(), f, p(), opts)
			},
		}
		c.Flags().StringArrayVar(&opts.Keyrings, "keyring", nil, "keyring directory (repeat for several nodes)")
		addSelectors(c)
		_ = c.MarkFlagRequired("keyring")
		_ = c.MarkFlagDirname("keyring")
		addLeaseFlags(c)
		c.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the plan per region and node, and the KMS calls by kind; change nothing")
		switch op {
		case keyring.OpRotateDataKey:
			c.Flags().Var((*ageFlag)(&opts.IfOlderThan), "if-older-than", "rotate only a data key older than this (e.g. 30d or 720h); otherwise say so and exit 0, for cron")
			c.Example = "  # daily from cron: rotates once the key is 30 days old\n  cmekctl rotate data-key --keyring /var/lib/cockroach/n1/cmek --if-older-than 30d"
		case keyring.OpRotateCMEK:
			c.Flags().StringVar(&opts.CMEK, "cmek", "", "re-wrap under this CMEK key instead of the current key's newest version")
			addRecordedURIFileFlag(c, "cmek")
		}
		if op != keyring.OpRotateDataKey {
			c.Flags().BoolVar(&opts.Partial, "partial", false, "rotate only the keyrings given although the cluster config lists more nodes of their region (the others are left on the old store key until rotate store-key --region R reconciles the region)")
		}
		if op == keyring.OpRotateCMEK {
			addCloudFlags(f, c, &opts.Cloud, cloudSpecs, cloudHelp["rotate-cmek"], "keyring", "cmek")
		} else {
			addCloudFlags(f, c, &opts.Cloud, cloudRefused, cloudHelp["rotate-refused"], "keyring", "if-older-than")
		}
		addStoreFlags(c)
		return c
	}
	cmd.AddCommand(
		sub(keyring.OpRotateDataKey, "data-key --keyring DIR... [--if-older-than 720h]", "Give each node a new active data key"),
		sub(keyring.OpRotateStoreKey, "store-key --keyring DIR...", "Give each region a new store key and re-wrap data keys under it"),
		sub(keyring.OpRotateCMEK, "cmek --keyring DIR... [--cmek NEW_URI]", "Re-wrap store keys under the CMEK key's current version or a new key"),
	)
	return cmd
}

type rotateReport struct {
	*keyring.Result
	KMSCalls KMSCalls `json:"kms_calls"`
}

func rotateRun(ctx context.Context, f *Factory, p printer, o *RotateOptions) error {
	if o.Cloud.Cloud {
		return cloudRotateRun(ctx, f, p, o.Op, &o.Cloud)
	}
	if o.Op != keyring.OpRotateDataKey && !o.Partial {
		if err := wholeRegions(f, o.Op, o.Keyrings); err != nil {
			return err
		}
	}
	g, err := keyring.LoadGroup(ctx, f.stores(o.Keyrings), !o.DryRun)
	if err != nil {
		return err
	}
	defer g.Close()
	opt := keyring.RotateOptions{IfOlderThan: o.IfOlderThan, NewCMEK: o.CMEK}
	if o.DryRun {
		plan, err := keyring.PlanRotate(g, o.Op, opt, f.Now())
		if err != nil {
			return splitRegionExit(f, err)
		}
		return printPlan(p, plan)
	}
	s := f.newSession()
	stop := f.progress(g)
	res, err := keyring.Rotate(ctx, f.envWithProgress(s, stop), g, o.Op, opt)
	stop.finish()
	if res == nil {
		return err
	}
	if res.Resumed && f.IO.IsStderrTTY() {
		fmt.Fprintf(f.IO.ErrOut, "resuming interrupted %s %s\n", res.Op, res.OpID)
	}
	var cerr error
	if o.Op == keyring.OpRotateCMEK {
		cerr = recordRegionCMEK(f, o.root, res, o.CMEK)
	}
	if perr := p.print(rotateReport{Result: res, KMSCalls: s.Counts()}, nodeTable(res.Nodes)); perr != nil {
		return perr
	}
	if cerr != nil && err == nil {
		return cerr
	}
	return splitRegionExit(f, err)
}

type planReport struct {
	DryRun bool `json:"dry_run"`
	*keyring.Plan
	KMSCalls KMSCalls `json:"kms_calls"`
}

// printPlan prints a dry run: per region the KMS calls by kind, per node
// what would change.
func printPlan(p printer, plan *keyring.Plan) error {
	wrap, unwrap := plan.Calls()
	rep := planReport{DryRun: true, Plan: plan, KMSCalls: KMSCalls{Wrap: int64(wrap), Unwrap: int64(unwrap)}}
	rt := table{Title: "Plan: " + plan.Op + " (dry run: nothing changed)", Headers: []string{"region", "cmek", "kms unwrap", "kms wrap"}}
	for _, r := range plan.Regions {
		rt.Rows = append(rt.Rows, []string{r.Region, redact(r.CMEK), fmt.Sprint(r.Unwrap), fmt.Sprint(r.Wrap)})
	}
	rt.Rows = append(rt.Rows, []string{"total", "", fmt.Sprint(unwrap), fmt.Sprint(wrap)})
	nt := table{Title: "Nodes", Headers: []string{"region", "node", "keyring", "would", "detail"}}
	for _, n := range plan.Nodes {
		nt.Rows = append(nt.Rows, []string{n.Region, n.Node, n.Dir, n.Action, n.Detail})
	}
	return p.print(rep, rt, nt)
}

// wholeRegions refuses a store-key or CMEK rotation of part of a region of
// the cluster config: the nodes left out would stay on the old store key,
// and every later rotation of the region would refuse.
func wholeRegions(f *Factory, op string, dirs []string) error {
	if f.Config == nil {
		return nil
	}
	given := map[string]bool{}
	for _, d := range dirs {
		if abs, err := filepath.Abs(d); err == nil {
			given[abs] = true
		}
	}
	for _, r := range f.Config.Regions {
		var in, out []string
		for _, n := range r.Nodes {
			abs, _ := filepath.Abs(n.Keyring)
			if given[abs] {
				in = append(in, n.Name)
			} else {
				out = append(out, n.Name+" ("+n.Keyring+")")
			}
		}
		if len(in) > 0 && len(out) > 0 {
			return usageError(fmt.Sprintf("give every keyring of region %s (or no --keyring: the cluster config's), or --partial to rotate only these", r.Name),
				"%s of part of region %s would leave %s on the old store key", op, r.Name, strings.Join(out, ", "))
		}
	}
	return nil
}

// ageFlag is a duration flag that also takes days ("30d", "1.5d"), as
// operators write a key's age.
type ageFlag time.Duration

func (a *ageFlag) String() string { return time.Duration(*a).String() }
func (a *ageFlag) Type() string   { return "duration" }

func (a *ageFlag) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return fmt.Errorf("%q: give a number of days (30d) or a duration (720h)", s)
		}
		*a = ageFlag(time.Duration(days * float64(24*time.Hour)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("%q: give a number of days (30d) or a duration (720h)", s)
	}
	*a = ageFlag(d)
	return nil
}
