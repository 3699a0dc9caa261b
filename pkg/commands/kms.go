package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// KMSOptions are the kms verbs' options.
type KMSOptions struct {
	Verb        string
	URI         string
	PendingDays int
	Yes         bool
}

func newCmdKMS(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kms",
		Short: "Administer CMEK keys: create, describe, rotate, disable, enable, delete",
		Long: `Administer a CMEK key in its KMS. URIs:
  file-kms:///abs/dir/name                                      the embedded KMS
  aws-kms:///<key ARN|key id|alias/name>?REGION=..              AWS KMS
  gcp-kms:///projects/P/locations/L/keyRings/R/cryptoKeys/K     GCP Cloud KMS
    ?AUTH=implicit&ENDPOINT=https://HOST:PORT                   another endpoint
    (ENDPOINT=http://127.0.0.1:PORT: an emulator, plain text, no credentials)
  vault-transit://host:port/<mount>/keys/<name>                 Vault transit

A URI that carries credentials (AWS_SECRET_ACCESS_KEY=, AWS_SESSION_TOKEN=,
CREDENTIALS=) is refused as an argument, where every local user sees it:
put it in a file only you can read and pass --cmek-file FILE (- for stdin).

Where a KMS has no equivalent of a verb (Vault has no disable, a cloud KMS
cannot destroy at once), cmekctl says so and what to do instead.`,
	}
	type verb struct {
		name, short string
		run         func(context.Context, provider.Admin, *KMSOptions) (provider.KeyState, error)
	}
	verbs := []verb{
		{"create", "Create a key", func(c context.Context, a provider.Admin, _ *KMSOptions) (provider.KeyState, error) {
			return a.Create(c)
		}},
		{"rotate", "Make a new primary version; old versions still decrypt", func(c context.Context, a provider.Admin, _ *KMSOptions) (provider.KeyState, error) {
			return a.Rotate(c)
		}},
		{"disable", "Disable the key: every wrap and unwrap fails until enable (reversible)", func(c context.Context, a provider.Admin, _ *KMSOptions) (provider.KeyState, error) {
			return a.Disable(c)
		}},
		{"enable", "Re-enable a disabled key", func(c context.Context, a provider.Admin, _ *KMSOptions) (provider.KeyState, error) {
			return a.Enable(c)
		}},
		{"schedule-deletion", "Schedule the key's destruction after a pending window", func(c context.Context, a provider.Admin, o *KMSOptions) (provider.KeyState, error) {
			return a.ScheduleDeletion(c, o.PendingDays)
		}},
		{"cancel-deletion", "Cancel a scheduled deletion (the key comes back disabled)", func(c context.Context, a provider.Admin, _ *KMSOptions) (provider.KeyState, error) {
			return a.CancelDeletion(c)
		}},
		{"destroy", "Destroy the key's material at once: data under it becomes unrecoverable", func(c context.Context, a provider.Admin, _ *KMSOptions) (provider.KeyState, error) {
			return a.Destroy(c)
		}},
	}
	for _, v := range verbs {
		opts := &KMSOptions{Verb: v.name}
		c := &cobra.Command{
			Use:   v.name + " URI",
			Short: v.short,
			Args:  uriOrFileArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				uri, err := uriArg(f, args)
				if err != nil {
					return err
				}
				opts.URI = uri
				return kmsRun(cmd.Context(), f, p(), opts, v.run)
			},
		}
		addURIFileFlag(c, "cmek")
		switch v.name {
		case "schedule-deletion":
			c.Flags().IntVar(&opts.PendingDays, "pending-days", 7, "days before the key is destroyed (AWS: 7 to 30)")
		case "destroy":
			c.Flags().BoolVar(&opts.Yes, "yes", false, "confirm without a prompt (required in scripts)")
		}
		cmd.AddCommand(c)
	}
	describe := &cobra.Command{
		Use:   "describe URI",
		Short: "Show the KMS's view of a key: state, versions, deletion date, whether material could come back",
		Args:  uriOrFileArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			uri, err := uriArg(f, args)
			if err != nil {
				return err
			}
			if _, err := f.Registry().Open(uri); err != nil {
				return usageError("check the URI; cmekctl kms --help lists the forms", "%v", err)
			}
			if err := f.kmsTrust().check(uri); err != nil {
				return err
			}
			k, err := f.newSession().Open(uri)
			if err != nil {
				return usageError("check the URI; cmekctl kms --help lists the forms", "%v", err)
			}
			st, err := k.Describe(cmd.Context())
			if err != nil {
				// %w keeps the provider's class: an unreachable KMS exits
				// as kms rotate does (23), a refused key 20.
				return fmt.Errorf("describe %s: %w", redact(uri), err)
			}
			return printKeyState(p(), st)
		},
	}
	addURIFileFlag(describe, "cmek")
	cmd.AddCommand(describe)
	return cmd
}

func kmsRun(ctx context.Context, f *Factory, p printer, o *KMSOptions, run func(context.Context, provider.Admin, *KMSOptions) (provider.KeyState, error)) error {
	if err := f.kmsTrust().check(o.URI); err != nil {
		return err
	}
	k, err := f.Registry().Open(o.URI)
	if err != nil {
		return usageError("check the URI; cmekctl kms --help lists the forms", "%v", err)
	}
	a, ok := provider.AsAdmin(k)
	if !ok {
		return usageError("administer this key with its KMS's own tools", "%s keys cannot be administered by cmekctl", redact(o.URI))
	}
	if o.Verb == "destroy" {
		if err := confirm(f, "destroy "+redact(o.URI)+": data under this key becomes unrecoverable", redact(o.URI), o.Yes); err != nil {
			return err
		}
	}
	st, err := run(ctx, a, o)
	if err != nil {
		return adminError(err)
	}
	return printKeyState(p, st)
}

// adminError maps the error of an administrative KMS call (kms VERB,
// revoke --kms-action): a MISUSE there is a request the KMS cannot carry
// out (no such operation, a value out of range), a usage error, not a key
// that failed to authenticate. Other classes keep their exit codes.
func adminError(err error) error {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.Class == provider.Misuse && pe.Code != "Permissions" {
		return &ExitError{Code: ExitUsage, Err: err, Hint: "the KMS cannot do this; the message says what to do instead"}
	}
	return err
}

func printKeyState(p printer, st provider.KeyState) error {
	t := table{Headers: []string{"version", "state", "created"}}
	for _, v := range st.Versions {
		primary := ""
		if v.ID == st.PrimaryVersion {
			primary = " (primary)"
		}
		t.Rows = append(t.Rows, []string{v.ID + primary, string(v.State), p.when(v.Created)})
	}
	head := table{Headers: []string{"key", "provider", "state", "deletion date", "recoverable"}}
	rec := "no"
	if st.Recoverable {
		rec = "yes: " + st.RecoverableReason
	}
	head.Rows = [][]string{{st.URI, st.Provider, string(st.State), p.when(st.DeletionDate), rec}}
	return p.print(st, head, t)
}

// confirm asks the operator to type expected on a terminal; in a script it
// requires --yes. It never proceeds on a mismatch.
func confirm(f *Factory, what, expected string, yes bool) error {
	if yes {
		return nil
	}
	if !f.IO.CanPrompt() {
		return usageError("pass --yes to confirm in a script", "%s: refusing without confirmation; nothing was changed", what)
	}
	fmt.Fprintf(f.IO.ErrOut, "This will %s.\n", what)
	ans, err := f.IO.Prompt(fmt.Sprintf("Type %q to confirm: ", expected))
	if err != nil || ans != expected {
		return usageError("type the exact text, or pass --yes", "confirmation did not match; nothing was changed")
	}
	return nil
}
