package commands

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// keyringCompletions are the flags completed from the keyrings named by
// --keyring on the same command line: what each keyring offers for the flag.
// Reading a keyring is a local file read (keyring.Store.Load); completion
// never calls a KMS and never prints an error.
var keyringCompletions = map[string]func(*keyring.Keyring) []string{
	"region":     func(k *keyring.Keyring) []string { return []string{k.Region} },
	"cluster-id": func(k *keyring.Keyring) []string { return []string{k.ClusterID} },
	"node":       func(k *keyring.Keyring) []string { return []string{k.Node} },
	"cmek": func(k *keyring.Keyring) []string {
		uris := []string{k.StoreWrap.CMEKURI}
		for _, b := range k.BackupKeys {
			for _, w := range b.Wraps {
				uris = append(uris, w.CMEKURI)
			}
		}
		return uris
	},
}

// registerCompletions adds dynamic shell completion to every command of the
// tree under root: --keyring completes directories, and the flags of
// keyringCompletions complete the values found in the keyrings given by
// --keyring earlier on the command line. A flag that already has a
// completion function (e.g. --output) keeps it.
func registerCompletions(root *cobra.Command) {
	walk(root, func(c *cobra.Command) {
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			if _, ok := c.GetFlagCompletionFunc(fl.Name); ok {
				return
			}
			switch fn := keyringCompletions[fl.Name]; {
			case fl.Name == "keyring":
				if _, ok := fl.Annotations[cobra.BashCompSubdirsInDir]; !ok {
					_ = c.MarkFlagDirname(fl.Name)
				}
			case fn != nil:
				_ = c.RegisterFlagCompletionFunc(fl.Name, completeFromKeyrings(fn))
			}
		})
	})
}

// completeEveryFlag makes --<Tab> offer every flag of a verb: cobra offers
// only the required flags not yet given while there are any, which hid the
// other plane's flags (--cloud) and every optional one. Only for a
// completion request: the annotation also makes a run check its required
// flags.
func completeEveryFlag(root *cobra.Command) {
	walk(root, func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(fl *pflag.Flag) {
			delete(fl.Annotations, cobra.BashCompOneRequiredFlag)
		})
	})
}

func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// completeFromKeyrings completes a flag with the sorted, distinct values that
// pick finds in the keyrings of --keyring; keyrings that are missing,
// unreadable or refused (permissions) are skipped.
func completeFromKeyrings(pick func(*keyring.Keyring) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []string
		for _, dir := range flagValues(cmd, "keyring") {
			k, err := keyring.Store{Dir: dir}.Load()
			if err != nil {
				continue
			}
			for _, v := range pick(k) {
				if v != "" && strings.HasPrefix(v, toComplete) {
					out = append(out, v)
				}
			}
		}
		slices.Sort(out)
		return slices.Compact(out), cobra.ShellCompDirectiveNoFileComp
	}
}

// flagValues returns the values given to a string or string-array flag.
func flagValues(cmd *cobra.Command, name string) []string {
	fl := cmd.Flags().Lookup(name)
	if fl == nil || !fl.Changed {
		return nil
	}
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return []string{fl.Value.String()}
}
