package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/backup"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// BackupOptions are the backup encrypt/decrypt options.
type BackupOptions struct {
	Keyrings      []string
	IncrementalOf string
	BackupKey     string
	Label         string
	Parallel      int
	ExpectBytes   int64
	In, Out       string
}

func newCmdBackup(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Encrypt and decrypt backup files with backup keys",
		Long: `Encrypt a backup stream with a backup key (a fresh one for a full backup, its
full backup's key for an incremental), and decrypt it with the CMEK key of any
region that wraps it. A backup's header is not trusted to name a KMS: decrypt
dials only CMEK keys the keyrings given record (exit 6 otherwise). Input and
output default to stdin and stdout:

  some-dump | cmekctl backup encrypt --keyring DIR > backup.cmek
  cmekctl backup decrypt --keyring DIR backup.cmek > restored

An OUT file is written beside itself and renamed into place only when the run
succeeds, so a failed run leaves no partial output (a symbolic link is
followed and kept); a device or named pipe (/dev/null, a FIFO) is written in
place. With -o json the report goes to stdout when OUT is a file, to stderr
when the data goes to stdout: it never mixes with the data (docs/json.md).`,
	}
	// sub is backup encrypt or decrypt: IN and OUT, --keyring, the node
	// selectors and --parallel.
	sub := func(use, short, keyringHelp, parallelWhat string, run func(context.Context, *Factory, printer, *BackupOptions) error) (*cobra.Command, *BackupOptions) {
		o := &BackupOptions{}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.MaximumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				o.In, o.Out = argAt(args, 0), argAt(args, 1)
				return run(cmd.Context(), f, p(), o)
			},
		}
		c.Flags().StringArrayVar(&o.Keyrings, "keyring", nil, keyringHelp)
		addSelectors(c)
		parallelFlag(c, &o.Parallel, parallelWhat)
		_ = c.MarkFlagRequired("keyring")
		return c, o
	}
	encCmd, enc := sub("encrypt --keyring DIR... [--incremental-of FILE] [IN [OUT]]",
		"Encrypt a backup (a full backup gets a fresh backup key)",
		"keyring directory (repeat; one per region that may restore)", "seal chunks", backupEncryptRun)
	encCmd.Flags().StringVar(&enc.IncrementalOf, "incremental-of", "", "the full backup this incremental builds on (reuses its key)")
	encCmd.Flags().StringVar(&enc.Label, "label", "", "label for a full backup's new key")
	encCmd.Flags().StringVar(&enc.BackupKey, "backup-key", "", "seal this full backup under the key backup-keys create made (its ID, as create prints it) instead of a new one")
	expectBytesFlag(encCmd, &enc.ExpectBytes)
	encCmd.Long = backupEncryptLong
	decCmd, _ := sub("decrypt --keyring DIR... [IN [OUT]]",
		"Decrypt a backup with the CMEK key of any region that wraps it",
		"keyring directory (repeat)", "open chunks", backupDecryptRun)
	cmd.AddCommand(encCmd, decCmd, newCmdBackupVerify(f, p))
	return cmd
}

func argAt(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func backupEncryptRun(ctx context.Context, f *Factory, p printer, o *BackupOptions) error {
	if err := refuseTerminal(f, o.Out); err != nil {
		return err
	}
	if err := checkBackupKeyFlags(o); err != nil {
		return err
	}
	in, closeIn, err := openStreamInput(f, o.In, &o.Parallel)
	if err != nil {
		return err
	}
	defer closeIn()
	g, err := keyring.LoadGroup(ctx, f.stores(o.Keyrings), true)
	if err != nil {
		return err
	}
	defer g.Close()
	s := f.newSession()
	env := f.env(s)
	hdr := backup.Header{ClusterID: g.Cluster, Kind: backup.KindFull}
	var key []byte
	var bk keyring.BackupKey
	if o.IncrementalOf != "" {
		full, err := readBackupHeader(o.IncrementalOf)
		if err != nil {
			return err
		}
		if full.ClusterID != g.Cluster {
			return exitf(ExitForeign, "%s is a backup of cluster %q, the keyrings are of cluster %q", o.IncrementalOf, full.ClusterID, g.Cluster)
		}
		found := false
		for _, b := range g.BackupKeys() {
			if b.ID == full.BackupKeyID {
				bk, found = b, true
			}
		}
		if !found {
			return exitf(ExitForeign, "backup key %s of %s is not in these keyrings: import it with cmekctl backup-keys import", keyring.Short(full.BackupKeyID), o.IncrementalOf)
		}
		if err := g.CheckNotRevoked(); err != nil {
			return err
		}
		key, _, err = keyring.UnwrapBackupKey(ctx, env, g.Cluster, bk, "")
		if err != nil {
			return err
		}
		hdr.Kind, hdr.Parent = backup.KindIncremental, full.ID
	} else if o.BackupKey != "" {
		if bk, key, err = useBackupKey(ctx, env, g, o.BackupKey); err != nil {
			return err
		}
	} else {
		bk, key, err = keyring.CreateBackupKey(ctx, env, g, o.Label, nil)
		if err != nil {
			return err
		}
	}
	defer keyring.Wipe(key)
	hdr.BackupKeyID, hdr.Wraps = bk.ID, toBackupWraps(bk.Wraps)
	if hdr.ID, err = backup.NewID(); err != nil {
		return err
	}
	n, err := writeStream(ctx, f, o.Out, in, o.ExpectBytes, func(w io.Writer, in io.Reader) error {
		bw, err := backup.NewWriter(w, hdr, key, stream.Options{Parallel: o.Parallel})
		if err != nil {
			return err
		}
		if _, err := io.Copy(bw, in); err != nil {
			return err
		}
		return bw.Close()
	})
	if err != nil {
		return err
	}
	rep := backupReport{ClusterID: g.Cluster, BackupID: hdr.ID, Kind: hdr.Kind, Parent: hdr.Parent, BackupKeyID: bk.ID,
		NewBackupKey: o.IncrementalOf == "" && o.BackupKey == "", streamReport: newStreamReport(o.In, o.Out, n, n.In, s.Counts())}
	return printStreamReport(f, p, o.Out, rep, backupLine("encrypted", rep))
}

func readBackupHeader(path string) (*backup.Header, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, exitf(ExitUsage, "open %s: %v", path, err)
	}
	defer fh.Close()
	h, err := backup.ReadHeader(fh)
	if err != nil {
		return nil, backupErr(path, err)
	}
	return h, nil
}

func backupErr(path string, err error) error {
	if errors.Is(err, backup.ErrNotBackup) {
		// Random bytes, a plaintext dump and a backup taken before CMEK was
		// enabled look the same: none starts with a backup header.
		return &ExitError{Code: ExitCorrupt, Err: fmt.Errorf("%s is not a cmekctl backup: it has no backup header", path),
			Hint: "if it is a backup taken before CMEK was enabled, cmekctl cannot restore it; otherwise it is damaged, or not a backup"}
	}
	return exitf(ExitCorrupt, "%s: %v", path, err)
}

func backupDecryptRun(ctx context.Context, f *Factory, p printer, o *BackupOptions) error {
	in, closeIn, err := openStreamInput(f, o.In, &o.Parallel)
	if err != nil {
		return err
	}
	defer closeIn()
	g, err := keyring.LoadGroup(ctx, f.stores(o.Keyrings), false)
	if err != nil {
		return err
	}
	if err := g.CheckNotRevoked(); err != nil {
		return err
	}
	s := f.newSession()
	env := f.env(s)
	name := o.In
	if name == "" {
		name = "stdin"
	}
	var usedRegion string
	var held []byte // the unwrapped backup key, wiped before returning
	unwrap := func(h *backup.Header) ([]byte, error) {
		if h.ClusterID != g.Cluster {
			return nil, fmt.Errorf("%w: the backup is of cluster %q, the keyrings of cluster %q", keyring.ErrForeign, h.ClusterID, g.Cluster)
		}
		// The keyrings' record of the backup key first (re-wrapped under the
		// regions' current keys), then the wraps in the file's header. The
		// header is not authenticated until chunk 0 opens, so its URIs name
		// nothing: a header wrap is used only under a CMEK key the keyrings
		// already know, dialled by the keyring's URI (never the file's).
		bk := keyring.BackupKey{ID: h.BackupKeyID}
		for _, k := range g.BackupKeys() {
			if k.ID == h.BackupKeyID {
				bk.Wraps = append(bk.Wraps, k.Wraps...)
			}
		}
		var unknown []string
		for _, w := range h.Wraps {
			if _, ok := g.RegionCMEK(w.Region); !ok {
				continue // no keyring of that region given: not ours to try
			}
			uri, ok := g.KnownCMEK(w.Region, w.CMEKURI)
			if !ok {
				unknown = append(unknown, w.Region)
				continue
			}
			bk.Wraps = append(bk.Wraps, keyring.RegionWrap{Region: w.Region, CMEKURI: uri, CMEKVersion: w.KeyVersion, Wrapped: w.Wrapped})
		}
		if len(bk.Wraps) == 0 && len(unknown) > 0 {
			return nil, untrustedKMSError("the backup's header", unknown)
		}
		if len(bk.Wraps) == 0 {
			return nil, fmt.Errorf("%w: none of the backup's regions has a keyring here", keyring.ErrForeign)
		}
		key, region, err := keyring.UnwrapBackupKey(ctx, env, g.Cluster, bk, "")
		usedRegion, held = region, key
		return key, err
	}
	defer func() { keyring.Wipe(held) }() // the reader is done with it when this returns
	var h *backup.Header
	n, err := writeStream(ctx, f, o.Out, in, -1, func(w io.Writer, in io.Reader) error {
		var r io.Reader
		var err error
		h, r, err = backup.Open(in, unwrap, stream.Options{Parallel: o.Parallel})
		if err != nil {
			if h == nil {
				return backupErr(name, err)
			}
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rep := backupReport{ClusterID: h.ClusterID, BackupID: h.ID, Kind: h.Kind, Parent: h.Parent, BackupKeyID: h.BackupKeyID,
		Region: usedRegion, streamReport: newStreamReport(o.In, o.Out, n, n.Out, s.Counts())}
	return printStreamReport(f, p, o.Out, rep, backupLine("decrypted", rep))
}

// untrustedKMSError refuses wraps whose CMEK URIs, read from a file anyone
// with access to backup or escrow storage could have written, name no key
// the keyrings know: dialling them would send the operator's credentials
// wherever the file says.
func untrustedKMSError(what string, regions []string) error {
	return &ExitError{Code: ExitForeign,
		Err: fmt.Errorf("%w: %s names a CMEK key for region %s that these keyrings do not know; refusing to dial a KMS named by a file",
			keyring.ErrForeign, what, strings.Join(regions, ", ")),
		Hint: "give the keyrings of the regions that wrap it (their recorded CMEK URIs are the only ones used), or rewrap the backup keys there first"}
}
