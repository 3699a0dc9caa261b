package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/audit"
	"github.com/cmekctl/cmekctl/pkg/provider"
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
	Path  string
	Since string
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

What the log does not protect against (yet): whoever can write the file can
truncate its tail, delete it whole, or rewrite it and re-chain the hashes,
and audit verify will not see it; keep a copy of the log elsewhere.`,
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
		Use:   "verify",
		Short: "Check the audit log's hash chain: exit 4 if a line was deleted or edited",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return auditVerifyRun(f, p(), cmd)
		},
	}
	cmd.AddCommand(show, verify)
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
	return p.print(out, t)
}

func auditVerifyRun(f *Factory, p printer, cmd *cobra.Command) error {
	es, path, err := readAudit(f, cmd)
	if err != nil {
		return err
	}
	probs := audit.Verify(es)
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
		return exitf(ExitCorrupt, "audit log %s: %d line(s) break the hash chain", path, len(probs))
	}
	if p.format == OutputTable {
		fmt.Fprintf(f.IO.ErrOut, "audit log %s: %d lines, chain intact\n", path, len(es))
	}
	return nil
}
