package commands

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// kmsTrust decides whether a KMS URI may be dialled in this run (DESIGN.md
// section 9). A URI comes from the operator (this command line, or the
// permission-checked config file's regions: cmek, previous_cmek) or from a
// keyring (which keyringtrust.go vets against the config). Whatever its source:
//   - plaintext transport (tls=false, an http:// endpoint) outside loopback
//     needs --insecure-kms on the command line: the requests carry the
//     credentials, and the answers carry unwrapped keys;
//   - an endpoint the URI itself names (AWS_ENDPOINT, a Vault host, any
//     *ENDPOINT parameter) outside loopback is dialled only when the
//     operator gave that URI, or allowed the endpoint with --kms-endpoint
//     (on the command line or in the config file), so that a keyring
//     changed by someone else cannot send the operator's credentials to a
//     host of their choosing.
//
// URIs read from backup headers, escrow files and samples never get here:
// they are only matched against the keyrings' (keyring.Group.KnownCMEK).
type kmsTrust struct {
	insecure bool
	allowed  []string
	operator map[string]bool // provider.Identity of the operator's URIs
	given    map[string]bool // those of this command line (flags, arguments)
	getenv   func(string) string
}

// newKMSTrust reads the trust settings of this run from its flags.
func newKMSTrust(f *Factory, cmd *cobra.Command, args []string, cfg *config.Config) *kmsTrust {
	t := &kmsTrust{operator: map[string]bool{}, getenv: f.Getenv}
	t.insecure, _ = cmd.Flags().GetBool("insecure-kms")
	t.allowed, _ = cmd.Flags().GetStringSlice("kms-endpoint")
	add := func(v string) {
		if !strings.Contains(v, "://") {
			return
		}
		if id := provider.Identity(v); id != "" {
			t.operator[id] = true
		}
		if _, after, ok := strings.Cut(v, "="); ok && strings.Contains(after, "://") { // --region-key R=URI
			if id := provider.Identity(after); id != "" {
				t.operator[id] = true
			}
		}
	}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				add(v)
			}
			return
		}
		add(fl.Value.String())
	})
	for _, a := range args {
		add(a)
	}
	t.given = maps.Clone(t.operator)
	if cfg != nil {
		for _, r := range cfg.Regions {
			add(r.CMEK)
			for _, p := range r.PreviousCMEK {
				add(p)
			}
		}
	}
	return t
}

// check refuses a URI this run may not dial.
func (t *kmsTrust) check(uri string) error {
	getenv := t.getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	trs, err := provider.TransportsOf(uri, getenv)
	if err != nil {
		return nil // the registry refuses it with its own message
	}
	for _, tr := range trs { // KMS and STS endpoints alike
		if err := t.checkTransport(uri, tr); err != nil {
			return err
		}
	}
	return nil
}

func (t *kmsTrust) checkTransport(uri string, tr provider.Transport) error {
	if tr.Plaintext && !tr.Loopback() && !t.insecure {
		return &ExitError{Code: ExitUsage,
			Err: fmt.Errorf("KMS %s: plaintext transport to %s refused: the credentials and the unwrapped keys would cross the network in clear",
				redact(uri), tr.Host),
			Hint: "use TLS (drop tls=false; an https:// AWS_ENDPOINT), or pass --insecure-kms on the command line to allow it for this run"}
	}
	if tr.Override && !tr.Loopback() && !t.operator[provider.Identity(uri)] && !t.allows(tr.Host) {
		return &ExitError{Code: ExitUsage,
			Err: fmt.Errorf("KMS %s: endpoint %s is named by a recorded CMEK URI, not by you: refusing to send credentials there",
				redact(uri), tr.Host),
			Hint: fmt.Sprintf("if %s is your KMS, allow it: --kms-endpoint %s on the command line, or kms-endpoint: [%s] in the config file", tr.Host, tr.Host, tr.Host)}
	}
	return nil
}

// allows reports whether host[:port] is in --kms-endpoint: an entry
// without a port allows every port of its host.
func (t *kmsTrust) allows(hostport string) bool {
	host := hostport
	if i := strings.LastIndex(hostport, ":"); i > 0 && !strings.HasSuffix(hostport, "]") {
		host = hostport[:i]
	}
	return slices.ContainsFunc(t.allowed, func(a string) bool {
		return strings.EqualFold(a, hostport) || strings.EqualFold(a, host)
	})
}
