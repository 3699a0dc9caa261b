package commands

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// globalOptions are the flags every command has.
type globalOptions struct {
	Output   string
	NoColor  bool
	AuditLog string
	Config   string
	// RequireFIPS refuses every verb unless on a FIPS build with
	// GODEBUG=fips140=only (fips.go).
	RequireFIPS bool
	LockWait    string
	NoHeaders   bool
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command { return newRootCmd(f, "") }

// partialTree marks a root built with one verb only (its annotation).
const partialTree = "cmekctl-partial-tree"

// newRootCmd builds the root command and, when only names one of its verbs,
// that verb's subtree only: the whole tree (2000 allocations) is about half a
// millisecond of every start (issue 18), and a run uses one verb. Main asks
// for one only when the first argument names it (lazyVerb).
func newRootCmd(f *Factory, only string) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "cmekctl",
		Short: "Customer-managed encryption keys for database clusters, from the KMS to the node",
		Long: `cmekctl builds, rotates, revokes and audits the CMEK key hierarchy of a
database cluster: the customer's CMEK key in a KMS they control (AWS KMS,
GCP Cloud KMS, Vault transit, or the embedded file-kms), a store key per
region wrapped by it, and a data key per node wrapped by the store key.

Start with a drill on the embedded KMS (no cloud account needed):

  cmekctl drill`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			f.Verb = strings.TrimPrefix(cmd.CommandPath(), "cmekctl ")
			f.started, f.reportVerb = f.Now(), f.Verb
			if err := loadConfig(f, cmd.Root(), cmd, g.Config, cmd.Flags().Changed("config")); err != nil {
				return err
			}
			uriArgs, err := resolveURIFiles(f, cmd, args)
			if err != nil {
				return err
			}
			f.trust = newKMSTrust(f, cmd, uriArgs, f.Config)
			if err := absKeyrings(cmd); err != nil {
				return err
			}
			f.stamps = keyringStamps(flagValues(cmd, "keyring"))
			if err := lockPolicy(f, cmd, g.LockWait); err != nil {
				return err
			}
			f.cloud = cmd.Flags().Changed("cloud")
			if g.NoColor {
				f.IO.NoColor = true
			}
			if g.Output == OutputTable && !cmd.Flags().Changed("output") && !f.IO.IsStdoutTTY() {
				g.Output = OutputTSV // no -o: a pipe gets TSV; -o table is honoured
			}
			if err := checkOutputFor(f.Verb, g.Output); err != nil {
				return err
			}
			if err := checkReport(cmd, g.Output); err != nil {
				return err
			}
			if f.IO.IsStderrTTY() && (g.Output == OutputTable || g.Output == OutputTSV) {
				f.kmsProgress = &kmsProgress{w: f.IO.ErrOut, slow: kmsSlow}
			}
			if g.RequireFIPS {
				if err := checkRequireFIPS(f.fips()); err != nil {
					return err
				}
			}
			auditSubject(f, cmd, args)
			return openAudit(f, g, cmd.Flags().Changed("audit-log"))
		},
	}
	root.PersistentFlags().StringVarP(&g.Output, "output", "o", OutputTable, "output format: table, tsv, json or yaml (table on a terminal and tsv when piped, unless given)")
	root.PersistentFlags().BoolVar(&g.NoHeaders, "no-headers", false, "no header line in tables and TSV")
	root.PersistentFlags().BoolVar(&g.NoColor, "no-color", false, "no colour in output (also NO_COLOR)")
	root.PersistentFlags().StringVar(&g.Config, "config", "", "cluster config file (default $XDG_CONFIG_HOME/cmekctl/config.yaml; also CMEKCTL_CONFIG)")
	root.PersistentFlags().Bool("insecure-kms", false, "allow plaintext transport (tls=false, http://) to a KMS outside loopback, for this run (command line only)")
	root.PersistentFlags().StringSlice("kms-endpoint", nil, "KMS endpoints (host or host:port) that CMEK URIs recorded in keyrings may name (AWS_ENDPOINT, a Vault host); also in the config file")
	root.PersistentFlags().StringVar(&g.AuditLog, "audit-log", "", "append-only audit log (default $XDG_STATE_HOME/cmekctl/audit.log; \"off\" for none)")
	root.PersistentFlags().BoolVar(&g.RequireFIPS, "require-fips", false, "refuse to run unless this is a FIPS build running with GODEBUG=fips140=only (also CMEKCTL_REQUIRE_FIPS; see cmekctl version)")
	addLockWaitFlag(root, &g.LockWait)
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{OutputTable, OutputTSV, OutputJSON, OutputYAML}, cobra.ShellCompDirectiveNoFileComp))
	addTemplateFuncs()
	root.SetUsageTemplate(root.UsageTemplate() + exitStatusPointer)
	setPlaneTemplates(root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("see: "+c.CommandPath()+" --help", "%v", err)
	})

	p := func() printer {
		return printer{io: f.IO, format: g.Output, verb: f.reportVerb, started: f.started, now: f.Now, noHeaders: g.NoHeaders}
	}
	for _, v := range verbs() {
		if only == "" || only == v.name {
			root.AddCommand(v.build(f, p))
		}
	}
	if only != "" {
		if root.Annotations == nil {
			root.Annotations = map[string]string{}
		}
		root.Annotations[partialTree] = only
	}
	registerCompletions(root)
	requireKnownSubcommands(root)
	addVersionFlag(root)
	addExamples(root)
	return root
}

// templateFuncs registers the help templates' functions in cobra's global
// map once: command trees are built concurrently (tests run Main in
// parallel), and concurrent writes to a map are fatal.
var templateFuncs sync.Once

func addTemplateFuncs() {
	templateFuncs.Do(func() {
		cobra.AddTemplateFunc("exitCodes", ExitCodesHelp)
		cobra.AddTemplateFunc("planeFlags", planeFlags)
		cobra.AddTemplateFunc("planeLong", planeLong)
	})
}

// Main runs cmekctl with args and returns the exit code.
func Main(f *Factory, args []string) int {
	// Before anything can hold a key: no core file, not dumpable (every
	// verb, not only the unwrap paths).
	keyring.DisableCoreDumps()
	ctx, stop := runContext(lazyVerb(args))
	defer stop()
	root := newRootCmd(f, lazyVerb(args))
	if len(args) > 0 && strings.HasPrefix(args[0], cobra.ShellCompRequestCmd) {
		completeEveryFlag(root)
	}
	root.SetArgs(args)
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	err := root.ExecuteContext(ctx)
	auditSummary(f, err)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	if code == ExitFailure && isCobraUsage(err) {
		code = ExitUsage
	}
	if ie := interrupted(ctx); ie != nil {
		err = interruptReport(f, ie, err)
		code = ie.Code()
	}
	var silent *silentError
	if !errors.As(err, &silent) {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: %s\n", oneLine(err.Error()))
		if h := hintFor(err); h != "" {
			fmt.Fprintf(f.IO.ErrOut, "cmekctl: hint: %s\n", h)
		} else if code == ExitUsage {
			fmt.Fprintf(f.IO.ErrOut, "cmekctl: hint: see cmekctl --help\n")
		}
	}
	return code
}

// verb is a top-level command, by name, and its constructor.
type verb struct {
	name  string
	build func(*Factory, func() printer) *cobra.Command
}

// verbs are cmekctl's top-level commands, in help order.
func verbs() []verb {
	return []verb{
		{"enable", newCmdEnable},
		{"status", newCmdStatus},
		{"rotate", newCmdRotate},
		{"unlock", newCmdUnlock},
		{"revoke", newCmdRevoke},
		{"verify-destroyed", newCmdVerify},
		{"backup-keys", newCmdBackupKeys},
		{"backup", newCmdBackup},
		{"data", newCmdData},
		{"kms", newCmdKMS},
		{"drill", newCmdDrill},
		{"version", newCmdVersion},
		{"audit", newCmdAudit},
		{"config", newCmdConfig},
		{"node", newCmdNode},
		{"region", newCmdRegion},
		{"store", newCmdStore},
		{"exit-codes", newCmdExitCodes},
	}
}

// wholeTreeVerbs read the flags of every verb (the config file's keys).
var wholeTreeVerbs = map[string]bool{"config": true, "node": true, "region": true}

// lazyVerb is the verb whose subtree alone Main builds: the first argument,
// when it names a verb exactly; "" (the whole tree) for anything else (a
// flag first, help, completion, a typo that needs suggestions).
func lazyVerb(args []string) string {
	if len(args) == 0 || wholeTreeVerbs[args[0]] {
		return ""
	}
	for _, v := range verbs() {
		if v.name == args[0] {
			return v.name
		}
	}
	return ""
}

// wholeTree is root when it holds every verb, else the whole tree built
// anew (on a copy of f, for its flags only).
func wholeTree(f *Factory, root *cobra.Command) *cobra.Command {
	if root.Annotations[partialTree] == "" {
		return root
	}
	fc := *f
	return NewRootCmd(&fc)
}

func newCmdExitCodes(*Factory, func() printer) *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "The exit codes of every cmekctl command",
		Long:  "cmekctl exits with one of these codes; scripts may rely on them.\n\n" + ExitCodesHelp(),
	}
}

// silentError carries an exit code whose message the command has already
// printed (e.g. a verdict).
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.Contains(s, "accepts ") || strings.HasPrefix(s, "required flag") || strings.HasPrefix(s, "invalid argument")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
