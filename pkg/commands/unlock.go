package commands

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// UnlockOptions are unlock's options.
type UnlockOptions struct {
	Keyring   string
	Out       string
	Format    string
	AllowDisk bool
	StorePath string
}

func newCmdUnlock(f *Factory, p func() printer) *cobra.Command {
	opts := &UnlockOptions{}
	cmd := &cobra.Command{
		Use:   "unlock --keyring DIR --out DIR2 [--format cockroach-v1|cockroach-v2|raw] [--allow-disk]",
		Short: "Node start: unwrap the store keys and hand them to the database",
		Long: `Unlock is what a node does at start: one KMS unwrap of the region's store
keys, written as store-key files (mode 0600) in --out, which must be on tmpfs
or ramfs unless --allow-disk: active.key, and old.key when there is a previous
store key. It prints the value for cockroach start --enterprise-encryption.

Formats: cockroach-v1 (32-byte key ID then the 32-byte key), cockroach-v2 (a
JWKS with one "oct" key), raw (the 32-byte key). The keyring records where the
files are, so revoke can purge them.

When the CMEK key cannot unwrap the store key the node cannot start: unlock
exits with 20 (key revoked/disabled/denied) or 21 (key destroyed).`,
		Example: `  cmekctl unlock --keyring /var/lib/cockroach/n1/cmek --out /run/cmekctl/n1
  cockroach start --enterprise-encryption="$(cmekctl unlock --keyring /var/lib/cockroach/n1/cmek --out /run/cmekctl/n1 --store-path /mnt/data1)" ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return unlockRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Keyring, "keyring", "", "the node's keyring directory")
	addSelectors(cmd)
	cmd.Flags().StringVar(&opts.Out, "out", "", "directory for the store-key files (tmpfs)")
	cmd.Flags().StringVar(&opts.Format, "format", keyring.FormatCockroachV1, "store-key file format: cockroach-v1, cockroach-v2 or raw")
	cmd.Flags().BoolVar(&opts.AllowDisk, "allow-disk", false, "allow an --out directory that is not on tmpfs or ramfs")
	cmd.Flags().StringVar(&opts.StorePath, "store-path", "*", "the CockroachDB store path for --enterprise-encryption")
	_ = cmd.MarkFlagRequired("keyring")
	_ = cmd.MarkFlagRequired("out")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{keyring.FormatCockroachV1, keyring.FormatCockroachV2, keyring.FormatRaw}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type unlockReport struct {
	*keyring.UnlockResult
	KMSCalls KMSCalls `json:"kms_calls"`
}

func unlockRun(ctx context.Context, f *Factory, p printer, o *UnlockOptions) error {
	s := f.newSession()
	res, err := keyring.Unlock(ctx, f.env(s), keyring.Store{Dir: o.Keyring}, keyring.UnlockOptions{Out: o.Out, Format: o.Format, AllowDisk: o.AllowDisk, StorePath: o.StorePath})
	if err != nil {
		return err
	}
	if p.format == OutputTable {
		_, err = fmt.Fprintln(f.IO.Out, res.Flag)
		return err
	}
	return p.print(unlockReport{UnlockResult: res, KMSCalls: s.Counts()})
}
