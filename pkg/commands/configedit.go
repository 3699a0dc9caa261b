package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// editConfigFile changes the cluster config file through edit (a
// pkg/config edit, which keeps comments and indentation), validates the
// whole result, and replaces the file crash-safely with its mode; a config
// that is a symbolic link stays one (the file it names is replaced).
func editConfigFile(root *cobra.Command, path string, edit func([]byte) ([]byte, error)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := edit(data)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: %w", path, err)}
	}
	known := allFlagNames(root)
	if _, err := config.Parse(path, out, func(n string) bool { return slices.Contains(known, n) }); err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	target := path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		target = real
	}
	return safefile.WriteFile(safefile.OS{}, target, out, fi.Mode().Perm())
}

// configPath is the file config init and set write: --config, else
// CMEKCTL_CONFIG, else the default path.
func configPath(f *Factory, cmd *cobra.Command) string {
	if p, _ := cmd.Flags().GetString("config"); p != "" {
		return p
	}
	if p := f.Getenv("CMEKCTL_CONFIG"); p != "" {
		return p
	}
	return config.DefaultPath(f.Getenv)
}

const configTemplate = `# cmekctl cluster config (docs/config.md). Precedence: flag > CMEKCTL_<FLAG>
# environment variable > this file > default.
cluster_id: %s
plane: standalone          # or cloud (the CockroachDB Cloud API)
regions: []
# Add regions and nodes with:
#   cmekctl region add --region us-east1 --cmek URI --node n1 --keyring DIR
#   cmekctl node add --region us-east1 --node n2 --keyring DIR
# Any flag's default, by its name, e.g.:
# output: json
`

func newCmdConfigInit(f *Factory, p func() printer) *cobra.Command {
	var clusterID string
	var force bool
	c := &cobra.Command{
		Use:   "init --cluster-id ID",
		Short: "Write a new cluster config file, mode 0600",
		Long: `Write a new cluster config file (--config, CMEKCTL_CONFIG, or
$XDG_CONFIG_HOME/cmekctl/config.yaml) with the cluster ID and commented hints;
add regions and nodes with region add and node add. An existing file is kept
unless --force is given.`,
		Example: "  cmekctl config init --cluster-id prod-1\n  cmekctl --config ./cluster.yaml config init --cluster-id lab",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := configPath(f, cmd)
			if path == "" {
				return usageError("pass --config FILE", "no config path: HOME and XDG_CONFIG_HOME are unset")
			}
			if _, err := os.Lstat(path); err == nil && !force {
				return usageError("edit it with cmekctl config set, or pass --force to replace it", "config file %s exists", path)
			} else if err != nil && !os.IsNotExist(err) {
				return err
			}
			data := fmt.Appendf(nil, configTemplate, clusterID)
			known := allFlagNames(cmd.Root())
			if _, err := config.Parse(path, data, func(n string) bool { return slices.Contains(known, n) }); err != nil {
				return &ExitError{Code: ExitUsage, Err: err, Hint: "give a cluster ID of letters, digits, '.', '_' or '-'"}
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			if err := safefile.WriteFile(safefile.OS{}, path, data, 0o600); err != nil {
				return err
			}
			rep := struct {
				Config    string `json:"config"`
				ClusterID string `json:"cluster_id"`
			}{path, clusterID}
			return p().print(rep, table{Headers: []string{"config", "cluster id"}, Rows: [][]string{{path, clusterID}}})
		},
	}
	c.Flags().StringVar(&clusterID, "cluster-id", "", "the cluster's ID")
	c.Flags().BoolVar(&force, "force", false, "replace an existing file")
	_ = c.MarkFlagRequired("cluster-id")
	return c
}

func newCmdConfigSet(f *Factory, p func() printer) *cobra.Command {
	return &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set cluster_id, plane, or a flag's default in the config file (comments kept)",
		Long: `Set a top-level key of the cluster config file: cluster_id, plane, or the
default of any flag by its name (output, lock-wait, audit-log, ...). The file is
validated as a whole before it is replaced; comments and indentation are kept.
Regions and nodes are edited with region add and node add.`,
		Example: "  cmekctl config set output json\n  cmekctl config set lock-wait 2m",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if why, ok := flagsOnly[args[0]]; ok {
				return usageError("pass --"+args[0]+" on the command line when you mean it", "--%s cannot be set in the config file: %s", args[0], why)
			}
			path := configPath(f, cmd)
			if _, err := os.Stat(path); err != nil {
				if os.IsNotExist(err) {
					return usageError("create one with cmekctl config init --cluster-id ID", "config file %s does not exist", path)
				}
				return err
			}
			if err := editConfigFile(cmd.Root(), path, func(b []byte) ([]byte, error) { return config.Set(b, args[0], args[1]) }); err != nil {
				return err
			}
			rep := struct {
				Config string `json:"config"`
				Key    string `json:"key"`
				Value  string `json:"value"`
			}{path, args[0], args[1]}
			return p().print(rep, table{Headers: []string{"config", "key", "value"}, Rows: [][]string{{path, args[0], args[1]}}})
		},
	}
}

// recordNode adds a node that node add enabled to the cluster config's
// region, so that config-driven verbs (rotate, revoke, verify-destroyed,
// status) include it from now on.
func recordNode(f *Factory, root *cobra.Command, region, node, dir string) (bool, error) {
	if f.Config == nil {
		return false, nil
	}
	if _, ok := f.Config.Region(region); !ok {
		return false, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	err = editConfigFile(root, f.Config.Path, func(b []byte) ([]byte, error) {
		return config.AddNode(b, region, config.Node{Name: node, Keyring: abs})
	})
	return err == nil, err
}

// recordRegionCMEK sets the cluster config's cmek of each region that rotate
// cmek moved onto newURI (a node of it rotated) to newURI, and keeps the key
// the config named in the region's previous_cmek, so that the config still
// names every key the region's keyrings record (keyringtrust.go).
func recordRegionCMEK(f *Factory, root *cobra.Command, res *keyring.Result, newURI string) error {
	if f.Config == nil || root == nil || newURI == "" {
		return nil
	}
	var done []string
	for _, n := range res.Nodes {
		r, ok := f.Config.Region(n.Region)
		if n.Err != nil || !ok || slices.Contains(done, n.Region) || provider.Identity(r.CMEK) == provider.Identity(newURI) {
			continue
		}
		done = append(done, n.Region)
		err := editConfigFile(root, f.Config.Path, func(b []byte) ([]byte, error) {
			return config.SetRegionCMEK(b, r.Name, newURI, r.CMEK)
		})
		if err != nil {
			return &ExitError{Code: ExitFailure,
				Err:  fmt.Errorf("region %s was rotated onto %s, but config file %s was not updated: %v", r.Name, redact(newURI), f.Config.Path, err),
				Hint: fmt.Sprintf("in %s, set cmek: of region %s to the new key and add %s to its previous_cmek:", f.Config.Path, r.Name, redact(r.CMEK))}
		}
		fmt.Fprintf(f.IO.ErrOut, "config file %s: region %s: cmek is now %s (%s kept in previous_cmek)\n", f.Config.Path, r.Name, redact(newURI), redact(r.CMEK))
	}
	return nil
}
