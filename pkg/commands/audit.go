package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/audit"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// auditedVerbs get a summary line in the audit log (their KMS calls get a
// line each, whatever the verb).
var auditedVerbs = []string{"enable", "rotate data-key", "rotate store-key", "rotate cmek", "unlock", "revoke",
	"verify-destroyed", "data encrypt", "data decrypt", "drill", "kms create", "kms rotate", "kms disable", "kms enable",
	"kms schedule-deletion", "kms cancel-deletion", "kms destroy", "backup-keys create", "backup-keys verify",
	"backup-keys rewrap", "backup-keys export", "backup-keys import", "backup encrypt", "backup decrypt", "node add"}

// destructiveVerbs fail closed: they do not run unless their audit log
// takes an entry first, or --audit-log off was given on the command line.
var destructiveVerbs = []string{"revoke", "kms destroy", "kms schedule-deletion"}

// auditSubject records what the summary entry names: the key URI of a kms
// verb, the directory unlock writes to.
func auditSubject(f *Factory, cmd *cobra.Command, args []string) {
	if strings.HasPrefix(f.Verb, "kms ") && len(args) > 0 {
		f.auditURI = provider.RedactURI(args[0])
	}
	if f.Verb == "unlock" {
		if out, err := cmd.Flags().GetString("out"); err == nil && out != "" {
			if abs, err := filepath.Abs(out); err == nil {
				out = abs
			}
			f.auditDir = out
		}
	}
}

func openAudit(f *Factory, g *globalOptions, explicit bool) error {
	if g.AuditLog == "off" || strings.HasPrefix(f.Verb, "audit") || !slices.Contains(auditedVerbs, f.Verb) && f.Verb != "status" && f.Verb != "kms describe" {
		return nil
	}
	path := g.AuditLog
	if path == "" {
		path = audit.DefaultPath(f.Getenv)
	}
	destructive := slices.Contains(destructiveVerbs, f.Verb)
	l, err := audit.Open(path, f.Now)
	if err == nil && destructive {
		// Fail closed: the log must take an entry before anything is done.
		err = l.Append(audit.Entry{Verb: f.Verb, Op: "start", CMEKURI: f.auditURI, Result: "started"})
	}
	if err != nil {
		if destructive {
			return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%s is destructive and its audit log cannot be written, so nothing was done: %w", f.Verb, err),
				Hint: "fix the audit log (--audit-log FILE), or run without one by passing --audit-log off on the command line"}
		}
		if explicit {
			return err
		}
		f.warnAudit(err)
		return nil
	}
	f.Audit = l
	return nil
}

// auditSummary appends the verb's result once it has run.
func auditSummary(f *Factory, err error) {
	if f.Audit == nil || !slices.Contains(auditedVerbs, f.Verb) {
		return
	}
	e := audit.Entry{Verb: f.Verb, Op: "command", CMEKURI: f.auditURI, Dir: f.auditDir, Result: "ok"}
	if err != nil {
		e.Result, e.Error = "error", oneLine(err.Error())
		var pe *provider.Error
		if errors.As(err, &pe) {
			e.ErrorClass = string(pe.Class)
		}
		var se *silentError
		if errors.As(err, &se) {
			e.Result = fmt.Sprintf("exit %d", se.code)
		}
	}
	if werr := f.Audit.Append(e); werr != nil {
		f.warnAudit(werr)
	}
}

// AuditOptions are the audit verbs' options.
type AuditOptions struct {
	Path       string
	Since      string
	Checkpoint string   // verify: a signed head to check the log against
	PublicKey  string   // verify: the key the checkpoint must be signed by (hex)
	Key        string   // checkpoint: the Ed25519 signing key file (made if absent)
	Out        string   // checkpoint: where to write it ("-" for stdout)
	MACKeys    []string // verify: keys audit init exported, to check the MAC chain
	ExportKey  string   // init: where to export the chain's starting key
	Force      bool     // init: start another chain
}

func newCmdAudit(f *Factory, p func() printer) *cobra.Command {
	opts := &AuditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the audit log",
		Long: `Every key operation (wrap, unwrap, describe, rotate, revoke, verify, backup-key
use, and every failure) appends one JSON line to the audit log: time, user,
host, verb, cluster, region, node, key IDs, CMEK URI, the KMS request ID where
the KMS returns one, result and error class; kms verbs name the key URI and
unlock names the directory it wrote keys to. Never a secret. Each line carries
the hash of the previous one, so audit verify detects a line deleted or edited
in the middle.

Destructive verbs (revoke, kms destroy, kms schedule-deletion) fail closed:
they append a "start" entry first and do nothing if the log cannot take it,
unless --audit-log off is given on the command line.

Entries carry a sequence number. The hash chain alone does not stop whoever
can write the file: they can cut its tail, delete it whole, or delete entries
and re-chain the rest. Two defences, best used together:

  audit init --export-key FILE starts a forward-secure MAC chain: every entry
  from then on carries HMAC-SHA256 under a key that advances with each entry
  (k(n+1) = HMAC(k(n), "next")); the writer keeps only the next entry's key,
  in <log>.mackey, overwritten in place. The starting key goes to FILE, for
  the auditor, off this host. audit verify --key FILE recomputes every key:
  whoever takes the host later cannot edit, delete, re-chain or cut what was
  written before (the writer's key cannot move back), only stop logging.

  audit checkpoint exports a signed head (Ed25519) to keep elsewhere; audit
  verify --checkpoint FILE detects a cut tail, a rewrite, a deleted log and
  an older copy put back against it.

What neither sees: entries never written (a writer who controls the host now
can stop logging, or log lies from now on), a log and key file deleted
together without a checkpoint (verify --key reports the key file gone), and
whoever holds the exported key (it can forge the whole chain) or the signing
key. See docs/audit.md.`,
	}
	show := &cobra.Command{
		Use:   "show [--since 24h|2026-11-01T00:00:00Z]",
		Short: "Show the audit log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditShowRun(f, p(), opts, cmd)
		},
	}
	show.Flags().StringVar(&opts.Since, "since", "", "only entries after this duration ago or RFC 3339 time")
	verify := &cobra.Command{
		Use:   "verify [--key FILE]... [--checkpoint FILE [--public-key HEX]]",
		Short: "Check the audit log's hash chain, MAC chain and a signed checkpoint: exit 4 on tampering",
		Long: `Check every line's hash, its link to the line before and its sequence number.
With --key FILE (the starting key audit init exported; repeat for each chain
started with --force), also recompute the forward-secure MAC chain: every
entry from the key's first on must carry its MAC, and the writer's key file
(<log>.mackey) must stand where the log ends. An entry edited, entries
deleted and the rest re-chained, or a cut tail are detected, even when done
with the writer's key. Entries written before audit init are checked by the
hash chain only.
With --checkpoint FILE (made by audit checkpoint and kept where the log's
writer cannot change it), also check that the entry the checkpoint signed is
in the log with the same hash: a truncated tail, entries deleted and the rest
re-chained, a log deleted whole or an older copy put back are detected.
--public-key HEX requires the checkpoint to be signed by that key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditVerifyRun(f, p(), opts, cmd)
		},
	}
	verify.Flags().StringVar(&opts.Checkpoint, "checkpoint", "", "a signed checkpoint (audit checkpoint) to check the log against")
	verify.Flags().StringVar(&opts.PublicKey, "public-key", "", "the Ed25519 public key (hex) the checkpoint must be signed by")
	verify.Flags().StringArrayVar(&opts.MACKeys, "key", nil, "a MAC chain's starting key, exported by audit init (repeat for each chain)")
	checkpoint := &cobra.Command{
		Use:   "checkpoint --key FILE [--out FILE]",
		Short: "Export a signed head of the audit log (Ed25519), to keep elsewhere",
		Long: `Sign the audit log's head (its last entry's sequence number and hash) with the
Ed25519 key in --key (a 32-byte seed, mode 0600; made there if it does not
exist) and write the checkpoint as JSON (--out, default stdout). Keep it where
whoever writes the log cannot change it; audit verify --checkpoint then detects
a truncated, rewritten, deleted or rolled-back log. Keep the key away from the
log's writer too: with it, a rewritten log can be checkpointed again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditCheckpointRun(f, opts, cmd)
		},
	}
	checkpoint.Flags().StringVar(&opts.Key, "key", "", "Ed25519 signing key file (made if it does not exist)")
	checkpoint.Flags().StringVar(&opts.Out, "out", "-", "where to write the checkpoint (- for stdout)")
	_ = checkpoint.MarkFlagRequired("key")
	cmd.AddCommand(show, verify, withoutReport(checkpoint), withoutReport(newCmdAuditInit(f, opts)))
	return cmd
}

func auditPath(f *Factory, cmd *cobra.Command) string {
	if p, _ := cmd.Flags().GetString("audit-log"); p != "" && p != "off" {
		return p
	}
	return audit.DefaultPath(f.Getenv)
}

func readAudit(f *Factory, cmd *cobra.Command) ([]audit.Entry, string, error) {
	path := auditPath(f, cmd)
	es, err := audit.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, nil // an empty log is not an error
	}
	if err != nil {
		return nil, path, exitf(ExitCorrupt, "%s: %v", path, err)
	}
	return es, path, nil
}

func auditShowRun(f *Factory, p printer, o *AuditOptions, cmd *cobra.Command) error {
	es, _, err := readAudit(f, cmd)
	if err != nil {
		return err
	}
	var since time.Time
	if o.Since != "" {
		if d, err := time.ParseDuration(o.Since); err == nil {
			since = f.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, o.Since); err == nil {
			since = t
		} else {
			return usageError("use a duration (24h) or an RFC 3339 time", "invalid --since %q", o.Since)
		}
	}
	out := []audit.Entry{}
	t := table{Headers: []string{"time", "user", "verb", "op", "cluster", "region", "node", "cmek", "result", "class"}}
	for _, e := range es {
		if e.Time.Before(since) {
			continue
		}
		out = append(out, e)
		t.Rows = append(t.Rows, []string{p.when(e.Time), e.User, e.Verb, e.Op, e.Cluster, e.Region, e.Node, e.CMEKURI, e.Result, e.ErrorClass})
	}
	return p.print(auditShowReport{Entries: out}, t)
}

// auditShowReport is audit show's report: the entries, oldest first.
type auditShowReport struct {
	Entries []audit.Entry `json:"entries"`
}

func auditVerifyRun(f *Factory, p printer, o *AuditOptions, cmd *cobra.Command) error {
	es, path, err := readAudit(f, cmd)
	if err != nil {
		return err
	}
	probs := audit.Verify(es)
	if o.Checkpoint != "" {
		b, err := os.ReadFile(o.Checkpoint)
		if err != nil {
			return exitf(ExitUsage, "--checkpoint: %v", err)
		}
		var cp audit.Checkpoint
		if err := json.Unmarshal(b, &cp); err != nil {
			return exitf(ExitCorrupt, "--checkpoint %s: not a checkpoint: %v", o.Checkpoint, err)
		}
		if err := cp.CheckSignature(o.PublicKey); err != nil {
			return exitf(ExitCorrupt, "--checkpoint %s: %v", o.Checkpoint, err)
		}
		probs = audit.VerifyAgainst(es, cp)
	}
	macProbs, err := verifyMACs(path, es, o.MACKeys)
	if err != nil {
		return err
	}
	probs = append(probs, macProbs...)
	rep := struct {
		Path     string          `json:"path"`
		Lines    int             `json:"lines"`
		OK       bool            `json:"ok"`
		Problems []audit.Problem `json:"problems"`
	}{path, len(es), len(probs) == 0, probs}
	if rep.Problems == nil {
		rep.Problems = []audit.Problem{}
	}
	t := table{Headers: []string{"line", "problem"}}
	for _, pr := range probs {
		t.Rows = append(t.Rows, []string{fmt.Sprint(pr.Line), pr.Reason})
	}
	if err := p.print(rep, t); err != nil {
		return err
	}
	if len(probs) > 0 {
		return exitf(ExitCorrupt, "audit log %s: %d problem(s): the log was tampered with", path, len(probs))
	}
	if p.text() {
		what := "chain intact"
		if len(o.MACKeys) > 0 {
			what = "hash chain and MAC chain intact"
		}
		fmt.Fprintf(f.IO.ErrOut, "audit log %s: %d lines, %s\n", path, len(es), what)
	}
	return nil
}

func auditCheckpointRun(f *Factory, o *AuditOptions, cmd *cobra.Command) error {
	es, path, err := readAudit(f, cmd)
	if err != nil {
		return err
	}
	key, err := audit.LoadOrCreateSigningKey(o.Key)
	if err != nil {
		return exitf(ExitPermissions, "%v", err)
	}
	cp, err := audit.MakeCheckpoint(path, es, key, f.Now())
	if err != nil {
		return exitf(ExitCorrupt, "audit log %s: %v", path, err)
	}
	b, _ := json.MarshalIndent(cp, "", "  ")
	b = append(b, '\n')
	if o.Out == "-" {
		_, err = f.IO.Out.Write(b)
		return err
	}
	if err := safefile.WriteFile(safefile.OS{}, o.Out, b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(f.IO.ErrOut, "checkpoint of %s: entry %d, key %s, written to %s\n", path, cp.Seq, cp.KeyID(), o.Out)
	return nil
}
