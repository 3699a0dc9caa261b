package commands

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryLeafHasExample: every verb a user runs shows at least one
// example in its help, and its help ends with a pointer to the exit-code
// table rather than the whole table.
func TestEveryLeafHasExample(t *testing.T) {
	root := NewRootCmd(NewFactory())
	var missing []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			walk(s)
		}
		if c.HasSubCommands() || c.Hidden || !c.IsAvailableCommand() && c != root || c.Name() == "help" || isCompletionCmd(c) {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			missing = append(missing, c.CommandPath())
		}
	}
	walk(root)
	if len(missing) > 0 {
		t.Errorf("%d leaf commands have no example: %s", len(missing), strings.Join(missing, ", "))
	}
}

func isCompletionCmd(c *cobra.Command) bool {
	for p := c; p != nil; p = p.Parent() {
		if p.Name() == "completion" || p.Name() == cobra.ShellCompRequestCmd || p.Name() == cobra.ShellCompNoDescRequestCmd {
			return true
		}
	}
	return false
}

// TestHelpPointsToExitCodes: a verb's help ends with the one-line pointer,
// not the whole table; cmekctl exit-codes prints the table.
func TestHelpPointsToExitCodes(t *testing.T) {
	code, out, _ := runFIPS(t, FIPSStatus{}, map[string]string{}, "rotate", "data-key", "--help")
	if code != 0 || !strings.Contains(out, "Exit status: 0 ok, 1 error, 2 usage; every code and its meaning: cmekctl exit-codes") || strings.Contains(out, "kms-unavailable") {
		t.Errorf("rotate data-key --help: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "Examples:\n") || !strings.Contains(out, "--if-older-than 30d") {
		t.Errorf("rotate data-key --help shows no example:\n%s", out)
	}
	code, out, _ = runFIPS(t, FIPSStatus{}, map[string]string{}, "exit-codes")
	if code != 0 || !strings.Contains(out, "kms-unavailable") || !strings.Contains(out, "130") {
		t.Errorf("exit-codes: exit %d\n%s", code, out)
	}
}
