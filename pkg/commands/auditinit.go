package commands

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/audit"
)

func newCmdAuditInit(f *Factory, opts *AuditOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init --export-key FILE [--force]",
		Short: "Start the audit log's forward-secure MAC chain; export its starting key for the auditor",
		Long: `Draw a random starting key for the audit log's next entry, write it to
--export-key FILE (created, mode 0600; never overwritten) and to the writer's
key file beside the log (<log>.mackey), and append an "audit init" entry, the
chain's first. From then on every entry carries HMAC-SHA256 under its own key,
and each append replaces the key by the next one (HMAC of it), so the writer
never holds a key of an entry already written.

Move FILE off this host to the auditor: with it, audit verify --key FILE
detects any entry edited, entries deleted and re-chained, or a cut tail, even
when done by someone holding the writer's key file. Whoever holds FILE can
forge the whole chain: keep it from the log's writer.

A log that has a chain already is refused; --force starts another (after the
key file was lost, say): the auditor needs both keys, and should ask why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditInitRun(f, opts, cmd)
		},
	}
	cmd.Flags().StringVar(&opts.ExportKey, "export-key", "", "file to export the chain's starting key to (created 0600), for the auditor")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "start another chain on a log that has one")
	_ = cmd.MarkFlagRequired("export-key")
	return cmd
}

func auditInitRun(f *Factory, o *AuditOptions, cmd *cobra.Command) error {
	path := auditPath(f, cmd)
	l, err := audit.Open(path, f.Now)
	if err != nil {
		return err
	}
	x, err := l.Init(o.ExportKey, o.Force)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "audit log %s: MAC chain started at entry %d; its starting key is in %s: move it to the auditor, off this host\n", path, x.Seq, o.ExportKey)
	return nil
}

// verifyMACs checks the log's MAC chain against the exported keys given.
func verifyMACs(path string, es []audit.Entry, files []string) ([]audit.Problem, error) {
	if len(files) == 0 {
		return nil, nil
	}
	var keys []audit.ExportedKey
	for _, file := range files {
		x, err := audit.ReadExportedKey(file)
		if err != nil {
			return nil, exitf(ExitUsage, "--key: %v", err)
		}
		keys = append(keys, x)
	}
	w, err := audit.WriterKey(path)
	if err != nil {
		return nil, exitf(ExitCorrupt, "%v", err)
	}
	return audit.VerifyMACs(es, keys, w), nil
}
