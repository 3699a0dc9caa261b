package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// runbookCmds turn the runbooks' shell blocks into a script that runs them
// verbatim (runbooks.txtar):
//
//	runbook OUT DOC:SECTIONS...
//
// DOC is a file under docs/; SECTIONS a comma list of its "## " headings'
// first words ("Before", "1", "3a", "Clean"; "0" is before the first
// heading), and "clean" for the blocks that remove the sandbox (rm -rf "$D").
// Each piece runs in a subshell with set -e; the variables a runbook sets
// (D, U, K...) are kept per DOC between its pieces, so runbooks can be
// interleaved. A command followed by `echo "exit $?"   # N` must exit N.
func runbookCmds(docs string) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"runbook": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) < 2 {
				ts.Fatalf("usage: runbook OUT DOC:SECTIONS...")
			}
			var b strings.Builder
			b.WriteString("set -u\n")
			for _, spec := range args[1:] {
				doc, sections, ok := strings.Cut(spec, ":")
				if !ok {
					ts.Fatalf("runbook: %q: want DOC:SECTIONS", spec)
				}
				body, err := runbookPiece(filepath.Join(docs, doc), strings.Split(sections, ","))
				ts.Check(err)
				env := "./" + strings.TrimSuffix(doc, ".md") + ".env"
				fmt.Fprintf(&b, "# %s\n(\nset -ea\n[ ! -f %s ] || . %s\n%s\nexport -p > %s\n) || exit 1\n", spec, env, env, body, env)
			}
			ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o600))
		},
	}
}

var (
	exitCheck = regexp.MustCompile(`^echo "exit \$\?"\s+#\s*(\d+)`)
	heading   = regexp.MustCompile(`^## (\S+?)\.?(\s|$)`)
)

// runbookPiece returns the shell blocks of the sections wanted, with each
// exit check made an assertion.
func runbookPiece(path string, want []string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var out []string
	section, inBlock, found := "0", false, map[string]bool{}
	var block []string
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case !inBlock && line == "```sh":
			inBlock, block = true, nil
		case inBlock && line == "```":
			inBlock = false
			tag := section
			if strings.Contains(strings.Join(block, "\n"), `rm -rf "$D"`) {
				tag = "clean"
			}
			if slices.Contains(want, tag) {
				found[tag] = true
				out = append(out, block...)
			}
		case inBlock:
			m := exitCheck.FindStringSubmatch(line)
			if m == nil {
				block = append(block, line)
				continue
			}
			if len(block) == 0 || (len(block) > 1 && strings.HasSuffix(block[len(block)-2], `\`)) {
				return "", fmt.Errorf("%s:%d: an exit check must follow a one-line command", path, i+1)
			}
			cmd := block[len(block)-1]
			what := strings.ReplaceAll(filepath.Base(path)+": "+cmd, "'", `'\''`)
			block[len(block)-1] = fmt.Sprintf("rc=0; %s || rc=$?; [ \"$rc\" = %s ] || { echo '%s: exited '$rc', want %s' >&2; exit 1; }", cmd, m[1], what, m[1])
		default:
			if m := heading.FindStringSubmatch(line); m != nil {
				section = m[1]
			}
		}
	}
	for _, w := range want {
		if !found[w] {
			return "", fmt.Errorf("%s: no shell block in section %q", path, w)
		}
	}
	return strings.Join(out, "\n"), nil
}
