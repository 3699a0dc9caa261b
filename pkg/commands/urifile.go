package commands

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Secrets never on argv: a KMS URI that carries credentials
// (AWS_SECRET_ACCESS_KEY=, AWS_SESSION_TOKEN=, CREDENTIALS=, ...) is
// refused on the command line, where every local user sees it (ps,
// /proc/PID/cmdline) and the shell keeps it in its history; and in a
// CMEKCTL_* variable (every child inherits it) or the config file (often
// shared) as a flag's default. Such a URI comes from a file instead:
// --cmek-file FILE (yours, no access for others), or --cmek-file - for
// stdin. The
// root command checks every verb's flags and arguments here, before the
// trust settings are built, so that a URI read from a file counts as the
// operator's own.

// uriFileSuffix names the file variant of a URI flag: --cmek-file; the
// annotation uriFileOf marks it (other -file flags name files of their own).
const (
	uriFileSuffix = "-file"
	uriFileOf     = "cmekctl_uri_file_of"
	uriRecorded   = "cmekctl_uri_recorded"
)

// recordedHint is the advice for a verb that records its CMEK URI in a
// keyring or the config file: neither holds a secret, so the URI must carry
// none, from the command line or from a file.
const recordedHint = "this verb records the URI (keyring, config file), which must hold no secret: give it without credentials and let the KMS's own chain supply them (AWS profile or AWS_* variables, GCP application default credentials, VAULT_TOKEN)"

// addURIFileFlag gives cmd --NAME-file FILE, the file variant of its --NAME
// URI flag (or, where the URI is the verb's argument, of that argument).
func addURIFileFlag(cmd *cobra.Command, name string) {
	what := "the --" + name + " URI"
	if cmd.Flags().Lookup(name) == nil {
		what = "the key's URI (instead of the URI argument)"
	}
	cmd.Flags().String(name+uriFileSuffix, "", "read "+what+" from FILE (- for stdin): for a URI that carries credentials, which the command line refuses")
	_ = cmd.MarkFlagFilename(name + uriFileSuffix)
	_ = cmd.Flags().SetAnnotation(name+uriFileSuffix, uriFileOf, []string{name})
}

// addRecordedURIFileFlag is addURIFileFlag for a verb that records the URI
// (enable, rotate cmek, region add): the file only spares typing it, since a
// URI with credentials is refused from a file too.
func addRecordedURIFileFlag(cmd *cobra.Command, name string) {
	cmd.Flags().String(name+uriFileSuffix, "", "read the --"+name+" URI from FILE (- for stdin); it is recorded, so it carries no credentials (the KMS's own chain supplies them)")
	_ = cmd.MarkFlagFilename(name + uriFileSuffix)
	_ = cmd.Flags().SetAnnotation(name+uriFileSuffix, uriFileOf, []string{name})
	_ = cmd.Flags().SetAnnotation(name+uriFileSuffix, uriRecorded, []string{"true"})
}

// resolveURIFiles refuses secrets given on the command line, and reads each
// --NAME-file given into its --NAME flag (or, for a verb whose URI is its
// argument, returns it as the argument). It returns the verb's arguments
// with that URI added, for the trust settings.
func resolveURIFiles(f *Factory, cmd *cobra.Command, args []string) ([]string, error) {
	var err error
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if err != nil || fl.Annotations[uriFileOf] != nil {
			return
		}
		src, ok := f.flagSources[fl.Name]
		if ok && src != srcFlag && src != srcEnv && src != srcFile {
			return
		}
		vals := []string{fl.Value.String()}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		}
		for _, v := range vals {
			if s := secretsOf(f, v); len(s) > 0 {
				switch src {
				case srcEnv:
					err = secretInEnv(cmd, fl.Name, s)
				case srcFile:
					err = secretInConfig(f, cmd, fl.Name, s)
				default:
					err = secretOnArgv(cmd, "--"+fl.Name, fl.Name, s)
				}
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for _, a := range args {
		if s := secretsOf(f, a); len(s) > 0 {
			return nil, secretOnArgv(cmd, "the URI argument", "cmek", s)
		}
	}
	f.uriFromFile = ""
	var out []string
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		of := fl.Annotations[uriFileOf]
		if err != nil || len(of) != 1 {
			return
		}
		name := of[0]
		var uri string
		if uri, err = readURIFile(f, fl.Name, fl.Value.String()); err != nil {
			return
		}
		target := cmd.Flags().Lookup(name)
		switch {
		case target == nil && len(args) > 0:
			err = usageError("give the URI either as the argument or with --"+fl.Name, "both a URI argument and --%s given", fl.Name)
		case target == nil:
			f.uriFromFile = uri
			out = append(out, uri)
		case target.Changed && f.flagSources[name] == srcFlag:
			err = usageError("give the URI either with --"+name+" or with --"+fl.Name, "both --%s and --%s given", name, fl.Name)
		default:
			err = cmd.Flags().Set(name, uri)
		}
	})
	if err != nil {
		return nil, err
	}
	return append(append([]string(nil), args...), out...), nil
}

// uriArg is a verb's URI: its argument, or the one --cmek-file gave.
func uriArg(f *Factory, args []string) (string, error) {
	switch {
	case len(args) == 1:
		return args[0], nil
	case f.uriFromFile != "":
		return f.uriFromFile, nil
	}
	return "", usageError("give the key's URI as the argument, or --cmek-file FILE for one that carries credentials", "no key URI given")
}

// uriOrFileArgs accepts one URI argument, or none with --cmek-file.
func uriOrFileArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return usageError("give one key URI", "%d arguments given: want one key URI", len(args))
	}
	if len(args) == 0 && !cmd.Flags().Changed("cmek"+uriFileSuffix) {
		return usageError("give the key's URI as the argument, or --cmek-file FILE for one that carries credentials", "no key URI given")
	}
	return nil
}

// secretsOf lists the secrets in a KMS URI value, or in the KMS URI of a
// NAME=URI value (--region-key). Other URIs (a store's) are their own
// parsers' business.
func secretsOf(f *Factory, v string) []string {
	kms := func(u string) []string {
		scheme, _, ok := strings.Cut(u, "://")
		if _, known := f.Registry()[scheme]; !ok || !known {
			return nil
		}
		return provider.SecretsIn(u)
	}
	if s := kms(v); len(s) > 0 {
		return s
	}
	if _, after, ok := strings.Cut(v, "="); ok {
		return kms(after)
	}
	return nil
}

func secretOnArgv(cmd *cobra.Command, where, name string, secrets []string) error {
	return usageError(secretHint(cmd, name), "%s carries %s: a secret on the command line is seen by every local user (ps, /proc) and kept in shell history; refusing (nothing was done)",
		where, strings.Join(secrets, ", "))
}

// secretInEnv refuses a CMEKCTL_* variable whose KMS URI carries
// credentials: every child process inherits it, and CI systems and unit
// files print their environments.
func secretInEnv(cmd *cobra.Command, name string, secrets []string) error {
	return usageError("unset "+envName(name)+"; "+secretHint(cmd, name), "%s carries %s: a secret in a CMEKCTL_* variable is inherited by every child process and often logged; refusing (nothing was done)",
		envName(name), strings.Join(secrets, ", "))
}

// secretInConfig refuses a config-file flag default whose KMS URI carries
// credentials: a cluster config is meant to be shared (a repository,
// configuration management), and region add refuses to write one there.
func secretInConfig(f *Factory, cmd *cobra.Command, name string, secrets []string) error {
	return usageError("remove it from the config file; "+secretHint(cmd, name), "%s:%d: --%s carries %s: a cluster config file is often shared (a repository, configuration management) and must hold no secret; refusing (nothing was done)",
		f.Config.Path, f.Config.Flags[name].Line, name, strings.Join(secrets, ", "))
}

// secretHint says where a URI that carries credentials goes instead.
func secretHint(cmd *cobra.Command, name string) string {
	if fl := cmd.Flags().Lookup(name + uriFileSuffix); fl != nil && fl.Annotations[uriRecorded] != nil {
		return recordedHint
	}
	if cmd.Flags().Lookup(name+uriFileSuffix) != nil {
		return "put the URI in a file only you can read and pass --" + name + uriFileSuffix + " FILE (or --" + name + uriFileSuffix + " - to read it from stdin)"
	}
	return "put credentials in the environment or the provider's credentials file and give the URI without them"
}

// readURIFile reads one URI from path (- for stdin), at most 64 KiB. A
// file gets the keyring's owner and mode checks on the descriptor it is read
// from: a file others can read has given its secret away, and one another
// user owns can be changed under the operator to steer credentials. A pipe
// of the operator's (--cmek-file <(vault kv get ...)) passes, as stdin does.
func readURIFile(f *Factory, flag, path string) (string, error) {
	var r io.Reader
	if path == "-" {
		r = f.IO.In
	} else {
		fh, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
		if err != nil {
			return "", usageError("give a readable file holding one URI", "--%s: %v", flag, err)
		}
		defer fh.Close()
		if err := checkURIFile(fh, flag, path); err != nil {
			return "", err
		}
		r = fh
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	uri := strings.TrimSpace(string(b))
	if uri == "" || strings.ContainsAny(uri, "\n\r") || !strings.Contains(uri, "://") {
		return "", usageError("the file holds one URI, scheme://..., on one line", "--%s %s: not one URI", flag, path)
	}
	return uri, nil
}

// checkURIFile refuses a --NAME-file that is not a regular file or pipe of
// the user running cmekctl with no access for others.
func checkURIFile(fh *os.File, flag, path string) error {
	fi, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	refuse := func(format string, args ...any) error {
		return &ExitError{Code: ExitPermissions, Err: fmt.Errorf("--%s %s: "+format+"; refusing (nothing was done)", append([]any{flag, path}, args...)...),
			Hint: "a URI file may hold credentials: keep it yours and private (chmod 600 FILE), or pass --" + flag + " - and give the URI on stdin"}
	}
	if !fi.Mode().IsRegular() && fi.Mode()&os.ModeNamedPipe == 0 {
		return refuse("not a regular file or a pipe")
	}
	if uid, ok := safefile.Owner(fi); ok && uid != os.Geteuid() {
		return refuse("owned by uid %d, not by you (uid %d)", uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return refuse("mode %04o lets others read or change it", fi.Mode().Perm())
	}
	return nil
}
