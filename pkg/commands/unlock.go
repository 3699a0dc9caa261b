package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// UnlockOptions are unlock's options.
type UnlockOptions struct {
	Keyring        string
	Out            string
	Format         string
	AllowDisk      bool
	StorePaths     []string
	RotationPeriod string
	SpecFile       string
}

func newCmdUnlock(f *Factory, p func() printer) *cobra.Command {
	opts := &UnlockOptions{}
	cmd := &cobra.Command{
		Use:   "unlock --keyring DIR --out DIR2 --store-path PATH... [--format cockroach-v1|cockroach-v2|raw] [--spec-file FILE]",
		Short: "Node start: unwrap the store keys and hand them to the database",
		Long: `Unlock is what a node does at start: one KMS unwrap of the region's store
keys, then, for each CockroachDB store of the node (--store-path, repeated,
one per store), the store key it is to run on (key=) and the one it runs on now
(old-key=), written as store-key files (mode 0600) in --out, which must be on
tmpfs or ramfs unless --allow-disk. It prints one value for cockroach start
--enterprise-encryption per store, one per line, and writes them to
--spec-file when given.

The keyring records, per store, the key it runs on and the key it was handed.
A store counts as moved to the handed key only once cmekctl node started
confirms its start; until then the next unlock hands it a pair that starts it
whichever of the two it is on.

Store paths must be absolute, without ',', '=' or a leading ~ (CockroachDB
splits the flag on commas, with no quoting). '*' (CockroachDB's "the first
store") is accepted only alone: with several stores the others would start
unencrypted.

Formats: cockroach-v1 (32-byte key ID then the key; every CockroachDB
version) and cockroach-v2 (a JWKS with one "oct" key; CockroachDB 24.1 or
later). Without --format each store keeps the format it was given its key
in (cockroach-v1 for a new store). A store key never changes format: the
move to cockroach-v2 is rotate store-key, then unlock --format cockroach-v2
(new key in v2, the current one in v1). --format raw is for other databases:
it writes the region's store keys (the bare key bytes) and prints their
paths, never a CockroachDB flag.

When the CMEK key cannot unwrap the store key the node cannot start: unlock
exits with 20 (key revoked/disabled/denied) or 21 (key destroyed).`,
		Example: `  cmekctl unlock --keyring /var/lib/cockroach/cmek --out /run/cmekctl --store-path /mnt/data1
  cockroach start --enterprise-encryption="$(cmekctl unlock --keyring /var/lib/cockroach/cmek --out /run/cmekctl --store-path /mnt/data1)" --store=path=/mnt/data1 ...
  # two stores, values in a file for the start script
  cmekctl unlock --keyring /var/lib/cockroach/cmek --out /run/cmekctl --store-path /mnt/d1 --store-path /mnt/d2 --spec-file /run/cmekctl/spec`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if storeMode(cmd) != "" {
				return unlockStoreRun(cmd.Context(), cmd, f, p(), opts)
			}
			return unlockRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Keyring, "keyring", "", "the node's keyring directory")
	addSelectors(cmd)
	cmd.Flags().StringVar(&opts.Out, "out", "", "directory for the store-key files (tmpfs)")
	cmd.Flags().StringVar(&opts.Format, "format", "", "store-key file format for a key a store is handed for the first time: cockroach-v1 or cockroach-v2 (default: the store's own, cockroach-v1 for a new store), or raw")
	cmd.Flags().BoolVar(&opts.AllowDisk, "allow-disk", false, "allow an --out directory that is not on tmpfs or ramfs")
	cmd.Flags().StringArrayVar(&opts.StorePaths, "store-path", nil, "a CockroachDB store's absolute path (repeat, one per store; '*' alone for a node with one store)")
	cmd.Flags().StringVar(&opts.RotationPeriod, "rotation-period", "", "passed to CockroachDB: how often it rotates its own data keys (e.g. 168h; default: CockroachDB's)")
	cmd.Flags().StringVar(&opts.SpecFile, "spec-file", "", "also write the --enterprise-encryption values to this file, one per line")
	_ = cmd.MarkFlagRequired("keyring")
	_ = cmd.MarkFlagRequired("out")
	addUnlockStoreFlags(cmd)
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{keyring.FormatCockroachV1, keyring.FormatCockroachV2, keyring.FormatRaw}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type unlockReport struct {
	*keyring.UnlockResult
	KMSCalls KMSCalls `json:"kms_calls"`
}

func unlockRun(ctx context.Context, f *Factory, p printer, o *UnlockOptions) error {
	s := f.newSession()
	res, err := keyring.Unlock(ctx, f.env(s), f.store(o.Keyring), keyring.UnlockOptions{Out: o.Out, Format: o.Format, AllowDisk: o.AllowDisk,
		StorePaths: o.StorePaths, RotationPeriod: o.RotationPeriod, SpecFile: o.SpecFile})
	if err != nil {
		return err
	}
	return printUnlock(f, p, res, o.Format, unlockReport{UnlockResult: res, KMSCalls: s.Counts()})
}

// printUnlock prints what unlock wrote: the notes on stderr; on a terminal
// or a pipe, one --enterprise-encryption value per store (--format raw: the
// file paths), one per line; else the report.
func printUnlock(f *Factory, p printer, res *keyring.UnlockResult, format string, report any) error {
	for _, st := range res.Stores {
		if st.Note != "" {
			fmt.Fprintf(f.IO.ErrOut, "cmekctl: note: %s\n", st.Note)
		}
	}
	if p.text() {
		lines := res.Flags
		if format == keyring.FormatRaw {
			lines = res.Files
		}
		_, err := fmt.Fprintln(f.IO.Out, strings.Join(lines, "\n"))
		return err
	}
	return p.print(report)
}
