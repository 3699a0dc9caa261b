package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Flag sources, for config view.
const (
	srcFlag    = "flag"
	srcEnv     = "env"
	srcFile    = "file"
	srcDefault = "default"
	srcCluster = "cluster config"
)

// secretFlags never print their values.
var secretFlags = []string{"api-key", "api-key-file", "token"}

// loadConfig finds and parses the config file: --config, else
// CMEKCTL_CONFIG, else the default path if it exists. Viper is used here,
// at the edge only: run functions read typed options.
func loadConfig(f *Factory, root, cmd *cobra.Command, path string, explicit bool) error {
	if path == "" {
		path = f.Getenv("CMEKCTL_CONFIG")
		explicit = path != ""
	}
	if path == "" {
		path = config.DefaultPath(f.Getenv)
	}
	if path != "" {
		// The flag names of the whole tree, only when a file is parsed.
		known := sync.OnceValue(func() []string { return allFlagNames(wholeTree(f, root)) })
		cfg, err := loadConfigFile(path, func(n string) bool { return slices.Contains(known(), n) })
		var ee *ExitError
		switch {
		case errors.Is(err, fs.ErrNotExist) && (!explicit || f.Verb == "config init"):
		case errors.Is(err, fs.ErrNotExist):
			return usageError("check --config or CMEKCTL_CONFIG", "config file %s does not exist", path)
		case errors.As(err, &ee):
			return err
		case err != nil:
			return &ExitError{Code: ExitUsage, Err: err, Hint: "fix the line named, then run the command again"}
		default:
			f.Config = cfg
		}
	}
	if err := applyFlagDefaults(f, cmd); err != nil {
		return err
	}
	if err := applyClusterFlags(f, cmd); err != nil {
		return err
	}
	return applyClusterKeyrings(f, cmd)
}

// applyClusterFlags takes the cluster ID, the plane and (for the Cloud)
// the regions' keys and auth principals from the cluster config, for flags
// the user did not set.
func applyClusterFlags(f *Factory, cmd *cobra.Command) error {
	c := f.Config
	if c == nil {
		return nil
	}
	set := func(name string, vals ...string) error {
		fl := cmd.Flags().Lookup(name)
		if fl == nil || fl.Changed || len(vals) == 0 {
			return nil
		}
		for _, v := range vals {
			if err := cmd.Flags().Set(name, v); err != nil {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: --%s: %v", c.Path, name, err)}
			}
		}
		f.flagSources[name] = srcCluster
		return nil
	}
	if c.ClusterID != "" {
		if err := set("cluster-id", c.ClusterID); err != nil {
			return err
		}
	}
	if c.Plane != config.PlaneCloud {
		return nil
	}
	if err := set("cloud", "true"); err != nil {
		return err
	}
	var keys, principals []string
	for _, r := range c.Regions {
		if r.CMEK != "" {
			keys = append(keys, r.Name+"="+r.CMEK)
		}
		if r.AuthPrincipal != "" {
			principals = append(principals, r.Name+"="+r.AuthPrincipal)
		}
	}
	if f.Verb == "enable" {
		if err := set("region-key", keys...); err != nil {
			return err
		}
		return set("auth-principal", principals...)
	}
	return nil
}

func allFlagNames(root *cobra.Command) []string {
	var names []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(fl *pflag.Flag) { names = append(names, fl.Name) })
		c.PersistentFlags().VisitAll(func(fl *pflag.Flag) { names = append(names, fl.Name) })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return names
}

// envName is the environment variable of a flag: CMEKCTL_<FLAG>.
func envName(flag string) string {
	return "CMEKCTL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyFlagDefaults sets every flag the user did not set from CMEKCTL_*
// environment variables, then from the config file: flag > env > file >
// default. It records each flag's source for config view.
func applyFlagDefaults(f *Factory, cmd *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("CMEKCTL")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	if f.Config != nil {
		for name, fv := range f.Config.Flags {
			v.SetDefault(name, fv.Values)
		}
	}
	f.flagSources = map[string]string{}
	var errs []error
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if fl.Name == "help" || fl.Name == "config" {
			return
		}
		if fl.Changed {
			f.flagSources[fl.Name] = srcFlag
			return
		}
		var vals []string
		src := srcDefault
		if env, ok := lookupEnv(f, fl.Name); ok {
			_ = v.BindEnv(fl.Name, envName(fl.Name))
			vals, src = splitList(fl, env), srcEnv
		} else if f.Config != nil {
			if _, ok := f.Config.Flags[fl.Name]; ok {
				vals, src = v.GetStringSlice(fl.Name), srcFile
			}
		}
		f.flagSources[fl.Name] = src
		if err := checkFlagsOnly(f, fl.Name, src); err != nil {
			errs = append(errs, err)
			return
		}
		for _, x := range vals {
			if err := cmd.Flags().Set(fl.Name, x); err != nil {
				where := envName(fl.Name)
				if src == srcFile {
					where = fmt.Sprintf("%s:%d", f.Config.Path, f.Config.Flags[fl.Name].Line)
				}
				errs = append(errs, fmt.Errorf("%s: invalid value for --%s: %v", where, fl.Name, err))
			}
		}
	})
	if len(errs) == 1 {
		var ee *ExitError
		if errors.As(errs[0], &ee) {
			return ee
		}
	}
	if len(errs) > 0 {
		return &ExitError{Code: ExitUsage, Err: errors.Join(errs...)}
	}
	return nil
}

func lookupEnv(f *Factory, flag string) (string, bool) {
	v := f.Getenv(envName(flag))
	return v, v != ""
}

func splitList(fl *pflag.Flag, s string) []string {
	switch fl.Value.Type() {
	case "stringArray", "stringSlice":
		return strings.Split(s, ",")
	}
	return []string{s}
}

// configView is what config view prints.
type configView struct {
	Path      string            `json:"config_file"`
	ClusterID string            `json:"cluster_id,omitempty"`
	Plane     string            `json:"plane,omitempty"`
	Regions   []configRegion    `json:"regions"`
	Flags     []configFlag      `json:"flags"`
	Env       map[string]string `json:"environment,omitempty"`
}

type configRegion struct {
	Name          string       `json:"name"`
	CMEK          string       `json:"cmek"`
	PreviousCMEK  []string     `json:"previous_cmek,omitempty"`
	AuthPrincipal string       `json:"auth_principal,omitempty"`
	Nodes         []configNode `json:"nodes"`
}

type configNode struct {
	Name    string `json:"name"`
	Keyring string `json:"keyring"`
}

type configFlag struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

func newCmdConfig(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration in effect",
		Long: `cmekctl reads a cluster config file (--config, CMEKCTL_CONFIG, or
$XDG_CONFIG_HOME/cmekctl/config.yaml): the cluster ID, its regions with their
CMEK URIs and nodes with their keyrings, and defaults for any flag. Every flag
can also be set as CMEKCTL_<FLAG> (dashes as underscores). Precedence: flag >
environment > file > default.

The config file gets a keyring's checks: a regular file owned by you (or
root), mode 0600, in directories only you (or root) can write to; otherwise
it is refused (exit 5). These flags are command-line only, refused from the
file and the environment: ` + strings.Join(flagsOnlyNames(), ", ") + `.`,
	}
	view := &cobra.Command{
		Use:   "view [-- COMMAND...]",
		Short: "Show the config file, and each flag's value and where it came from (secrets redacted)",
		Long: `Show the cluster config file, and each flag's value with its source (flag,
env, file, cluster config or default). After --, a command line: the flags of
that verb, as it would run with them.`,
		Example: "  cmekctl config view\n  cmekctl config view -- rotate data-key --if-older-than 720h",
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				target, err := viewTarget(f, cmd, args)
				if err != nil {
					return err
				}
				cmd = target
			}
			cv := configView{Regions: []configRegion{}}
			if c := f.Config; c != nil {
				cv.Path, cv.ClusterID, cv.Plane = c.Path, c.ClusterID, c.Plane
				for _, r := range c.Regions {
					cr := configRegion{Name: r.Name, CMEK: provider.RedactURI(r.CMEK), AuthPrincipal: r.AuthPrincipal, Nodes: []configNode{}}
					for _, u := range r.PreviousCMEK {
						cr.PreviousCMEK = append(cr.PreviousCMEK, provider.RedactURI(u))
					}
					for _, n := range r.Nodes {
						cr.Nodes = append(cr.Nodes, configNode{n.Name, n.Keyring})
					}
					cv.Regions = append(cv.Regions, cr)
				}
			}
			names := make([]string, 0, len(f.flagSources))
			for n := range f.flagSources {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fl := cmd.Flags().Lookup(n)
				if fl == nil {
					continue
				}
				val := fl.Value.String()
				if slices.Contains(secretFlags, n) && val != "" {
					val = provider.Redacted
				}
				cv.Flags = append(cv.Flags, configFlag{Name: n, Value: val, Source: f.flagSources[n]})
			}
			cv.Env = map[string]string{}
			for _, kv := range os.Environ() {
				k, val, _ := strings.Cut(kv, "=")
				if strings.HasPrefix(k, "CMEKCTL_") {
					if secretEnv(k) {
						val = provider.Redacted
					}
					cv.Env[k] = val
				}
			}
			t := table{Title: "Cluster", Headers: []string{"region", "cmek", "node", "keyring"}}
			for _, r := range cv.Regions {
				for _, n := range r.Nodes {
					t.Rows = append(t.Rows, []string{r.Name, r.CMEK, n.Name, n.Keyring})
				}
			}
			ft := table{Title: "Flags", Headers: []string{"flag", "value", "source"}}
			for _, fl := range cv.Flags {
				ft.Rows = append(ft.Rows, []string{fl.Name, fl.Value, fl.Source})
			}
			return p().print(cv, t, ft)
		},
	}
	cmd.AddCommand(view, newCmdConfigInit(f, p), newCmdConfigSet(f, p))
	return cmd
}

// applyClusterKeyrings gives a verb that takes --keyring, when none was
// given, the keyrings of the cluster config's nodes, narrowed by the verb's
// --region and --node selections where it has them. enable reads the
// cluster config itself.
func applyClusterKeyrings(f *Factory, cmd *cobra.Command) error {
	fl := cmd.Flags().Lookup("keyring")
	if fl == nil || slices.Contains([]string{"enable", "node add", "region add"}, f.Verb) {
		return nil
	}
	if st := cmd.Flags().Lookup("store"); st != nil && st.Value.String() != "" {
		// --store: the store lists the nodes; --keyring is at most a
		// node's local cache, and not required.
		delete(fl.Annotations, cobra.BashCompOneRequiredFlag)
		return nil
	}
	regions, _ := cmd.Flags().GetStringSlice("region")
	nodes, _ := cmd.Flags().GetStringSlice("node")
	selecting := len(regions) > 0 || len(nodes) > 0
	switch {
	case fl.Changed && selecting && f.flagSources["keyring"] == srcFlag:
		return usageError("give either --keyring DIR... or --region/--node with a cluster config", "--keyring and --region/--node both select nodes")
	case fl.Changed:
		return nil
	case f.Config == nil || len(f.Config.Regions) == 0:
		if selecting {
			return usageError("pass --config FILE (or CMEKCTL_CONFIG) with the cluster's regions and nodes, or --keyring DIR", "--region and --node select nodes of a cluster config, and none was found")
		}
		return nil
	}
	sel, err := f.Config.Select(regions, nodes)
	if err != nil {
		return usageError("cmekctl config view lists the cluster's regions and nodes", "%v", err)
	}
	var dirs []string
	for _, r := range sel {
		for _, n := range r.Nodes {
			dirs = append(dirs, n.Keyring)
		}
	}
	if fl.Value.Type() == "string" && len(dirs) != 1 {
		return usageError("name one node: --node N (or --keyring DIR)", "%s acts on one node, and the selection from %s has %d", f.Verb, f.Config.Path, len(dirs))
	}
	for _, d := range dirs {
		if err := cmd.Flags().Set("keyring", d); err != nil {
			return err
		}
	}
	f.flagSources["keyring"] = srcCluster
	return nil
}

// addSelectors gives a verb that acts on keyrings the --region and --node
// selections of the cluster config's nodes.
func addSelectors(cmd *cobra.Command) {
	cmd.Flags().StringSlice("region", nil, "with a cluster config: only the nodes of these regions")
	cmd.Flags().StringSlice("node", nil, "with a cluster config: only these nodes")
}

// secretEnv: an environment variable whose value config view redacts (an
// API key, a token, a secret, a password), and not, say, CMEKCTL_KEYRING.
func secretEnv(name string) bool {
	for _, fl := range secretFlags {
		if name == envName(fl) {
			return true
		}
	}
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return strings.HasSuffix(name, "_KEY") || strings.Contains(name, "_KEY_")
}

// viewTarget is the verb of config view -- VERB [FLAGS]: its flags parsed
// and given their config, environment and cluster defaults as the verb's
// own run would, without running it.
func viewTarget(f *Factory, view *cobra.Command, args []string) (*cobra.Command, error) {
	target, rest, err := view.Root().Find(args)
	if err != nil || target == view.Root() || !target.Runnable() {
		return nil, usageError("give a verb after --, e.g. cmekctl config view -- rotate data-key", "config view: %q is not a cmekctl verb", strings.Join(args, " "))
	}
	if err := target.ParseFlags(rest); err != nil {
		return nil, usageError("see: "+target.CommandPath()+" --help", "%v", err)
	}
	f.Verb = strings.TrimPrefix(target.CommandPath(), "cmekctl ")
	// The global flags were set from the environment and file for config
	// view itself already: keep where each came from.
	global := f.flagSources
	cfg, _ := view.Flags().GetString("config")
	if err := loadConfig(f, view.Root(), target, cfg, view.Flags().Changed("config")); err != nil {
		return nil, err
	}
	for name, src := range global {
		if f.flagSources[name] == srcFlag && view.Root().PersistentFlags().Lookup(name) != nil {
			f.flagSources[name] = src
		}
	}
	return target, nil
}
