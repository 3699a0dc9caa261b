// Command gen writes the files that are generated from cmekctl's command
// tree: shell completions, man pages, Markdown reference pages and the
// exit-code table. Run it from the module root after changing a command:
//
//	go run ./internal/gen
//
// Its output is deterministic (sorted by cobra, no timestamps, no paths or
// user names of the machine that ran it), so the committed files can be
// checked for drift (gen_test.go).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/cmekctl/cmekctl/pkg/commands"
)

// Where each generated file goes, relative to the module root. Every file in
// these directories is generated: the drift test compares them whole.
const (
	completionsDir = "completions"
	manDir         = "docs/man"
	referenceDir   = "docs/reference"
	exitCodesFile  = "docs/exit-codes.md"
)

// manDate is the fixed date in the man pages' header, so that regenerating
// them changes nothing. Move it when the manual changes materially.
var manDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// fixedEnv is the environment the command tree is built in, so defaults that
// depend on the user's home or XDG directories print the same everywhere.
var fixedEnv = map[string]string{
	"HOME":            "~",
	"USER":            "user",
	"XDG_CONFIG_HOME": "",
	"XDG_STATE_HOME":  "",
	"XDG_DATA_HOME":   "",
	"XDG_CACHE_HOME":  "",
	"CMEKCTL_CONFIG":  "",
	"NO_COLOR":        "",
}

func main() {
	out := flag.String("out", ".", "module root to write into")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

// generate writes every generated file under root, replacing what was there.
func generate(root string) error {
	machine := []string{os.Getenv("HOME")}
	if wd, err := os.Getwd(); err == nil {
		machine = append(machine, wd)
	}
	if abs, err := filepath.Abs(root); err == nil {
		machine = append(machine, abs)
	}
	for k, v := range fixedEnv {
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
	cmd := tree()
	for _, d := range []string{completionsDir, manDir, referenceDir} {
		dir := filepath.Join(root, d)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := writeCompletions(cmd, filepath.Join(root, completionsDir)); err != nil {
		return err
	}
	header := &doc.GenManHeader{Title: "CMEKCTL", Section: "1", Date: &manDate, Source: "cmekctl", Manual: "cmekctl manual"}
	if err := doc.GenManTree(cmd, header, filepath.Join(root, manDir)); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	if err := doc.GenMarkdownTree(cmd, filepath.Join(root, referenceDir)); err != nil {
		return fmt.Errorf("markdown reference: %w", err)
	}
	if err := addExitStatus(filepath.Join(root, manDir), ".SH SEE ALSO", manExitStatus(commands.ExitCodesHelp())); err != nil {
		return err
	}
	if err := addExitStatus(filepath.Join(root, referenceDir), "### SEE ALSO", "### Exit status\n\nThe exit codes are the same for every command: see [exit codes](../exit-codes.md).\n\n"); err != nil {
		return err
	}
	codes, err := exitCodesMarkdown(commands.ExitCodesHelp())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, exitCodesFile), codes, 0o644); err != nil {
		return err
	}
	return checkPortable(root, machine)
}

// tree is the command tree as a user's shell sees it, with the completion
// command that cobra adds at run time.
func tree() *cobra.Command {
	root := commands.NewRootCmd(commands.NewFactory())
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableAutoGenTag = true
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return root
}

func writeCompletions(root *cobra.Command, dir string) error {
	gens := []struct {
		name string
		gen  func(*bytes.Buffer) error
	}{
		{"cmekctl.bash", func(b *bytes.Buffer) error { return root.GenBashCompletionV2(b, true) }},
		{"_cmekctl", func(b *bytes.Buffer) error { return root.GenZshCompletion(b) }},
		{"cmekctl.fish", func(b *bytes.Buffer) error { return root.GenFishCompletion(b, true) }},
		{"cmekctl.ps1", func(b *bytes.Buffer) error { return root.GenPowerShellCompletionWithDesc(b) }},
	}
	for _, g := range gens {
		var b bytes.Buffer
		if err := g.gen(&b); err != nil {
			return fmt.Errorf("completion %s: %w", g.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, g.name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// addExitStatus inserts section before the marker line of every file in dir
// (cobra/doc has no hook for an extra section).
func addExitStatus(dir, marker, section string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		i := bytes.Index(data, []byte(marker))
		if i < 0 {
			return fmt.Errorf("%s: no %q to put the exit status before", path, marker)
		}
		out := append(append(append([]byte{}, data[:i]...), section...), data[i:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// manExitStatus is the EXIT STATUS section of a man page.
func manExitStatus(help string) string {
	var b strings.Builder
	b.WriteString(".SH EXIT STATUS\n")
	for _, line := range strings.Split(strings.TrimRight(help, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		fmt.Fprintf(&b, ".TP\n\\fB%s\\fP %s\n%s\n", f[0], roffEscape(f[1]), roffEscape(strings.Join(f[2:], " ")))
	}
	b.WriteString("\n")
	return b.String()
}

// roffEscape keeps text from being read as roff requests or escapes.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// exitCodesMarkdown turns commands.ExitCodesHelp (lines of code, name,
// meaning) into docs/exit-codes.md.
func exitCodesMarkdown(help string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`# Exit codes

<!-- Generated by go run ./internal/gen from commands.ExitCodesHelp; do not edit. -->

cmekctl exits with one of these codes, the same for every command; scripts
may rely on them, and a code is never renumbered. ` + "`cmekctl exit-codes`" + ` prints this
table, and every command's ` + "`--help`" + ` ends with it.

| code | name | meaning |
|---:|---|---|
`)
	n := 0
	for _, line := range strings.Split(strings.TrimRight(help, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("exit-code table: cannot parse line %q", line)
		}
		what := strings.Join(f[2:], " ")
		fmt.Fprintf(&b, "| %s | `%s` | %s |\n", f[0], f[1], strings.ReplaceAll(what, "|", `\|`))
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("exit-code table is empty")
	}
	b.WriteString(`
Errors go to standard error as one line, ` + "`cmekctl: <what failed>`" + `, often followed
by a ` + "`cmekctl: hint: <what to do>`" + ` line; data goes to standard output. The
verdicts of ` + "`cmekctl verify-destroyed`" + ` are explained in
[the revocation-drill runbook](runbook-revocation-drill.md).
`)
	return b.Bytes(), nil
}

// checkPortable fails if a generated file names the machine that made it:
// the user's real home, the working directory or the output directory.
func checkPortable(root string, machine []string) error {
	var leaks []string
	for _, s := range machine {
		if len(s) > 1 {
			leaks = append(leaks, s)
		}
	}
	for _, d := range []string{completionsDir, manDir, referenceDir, exitCodesFile} {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, l := range leaks {
				if bytes.Contains(data, []byte(l)) {
					return fmt.Errorf("%s contains %q: a default depends on the machine; make it a placeholder", path, l)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
