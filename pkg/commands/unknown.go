package commands

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// requireKnownSubcommands makes every command that only groups others (root,
// rotate, kms, backup-keys, ...) refuse a word that names none of them,
// exit 2 with the nearest names, instead of printing its help and exiting 0:
// a mistyped verb in cron must not pass as done. Alone, such a command still
// prints its help.
func requireKnownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireKnownSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	// Flags of the verb the user meant must not hide the typo.
	c.FParseErrWhitelist.UnknownFlags = true
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return unknownSubcommand(cmd, args[0])
	}
}

func unknownSubcommand(cmd *cobra.Command, word string) error {
	hint := "see: " + cmd.CommandPath() + " --help"
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(word); len(s) > 0 {
		for i := range s {
			s[i] = cmd.CommandPath() + " " + s[i]
		}
		hint = "did you mean " + strings.Join(s, " or ") + "? (" + hint + ")"
	} else {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		hint = fmt.Sprintf("%s takes one of: %s", cmd.CommandPath(), strings.Join(names, ", "))
	}
	return usageError(hint, "unknown command %q for %q", word, cmd.CommandPath())
}
