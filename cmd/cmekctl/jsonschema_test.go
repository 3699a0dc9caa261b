package main

// The JSON contract (docs/json.md): every verb with a report has a schema in
// testdata/json-schema/VERB.json (spaces as _), and a script that runs the
// verb with -o json checks its report against it:
//
//	exec cmekctl backup encrypt ... -o json
//	jsonschema 'backup encrypt'           (stdout; -stderr for stderr)
//
// CMEKCTL_UPDATE_SCHEMA=1 go test ./cmd/cmekctl -run TestScripts merges what
// each report shows into its schema (for review: enums, formats) instead.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/internal/jsonschema"
	"github.com/cmekctl/cmekctl/pkg/commands"
)

const schemaDir = "testdata/json-schema"

func schemaFile(verb string) string {
	return filepath.Join(schemaDir, strings.ReplaceAll(verb, " ", "_")+".json")
}

var updateMu sync.Mutex

func schemaCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	wd, _ := os.Getwd()
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"jsonschema": func(ts *testscript.TestScript, neg bool, args []string) {
			stream := "stdout"
			if len(args) > 0 && args[0] == "-stderr" {
				stream, args = "stderr", args[1:]
			}
			if neg || len(args) != 1 {
				ts.Fatalf("usage: jsonschema [-stderr] VERB")
			}
			doc := []byte(ts.ReadFile(stream))
			path := filepath.Join(wd, schemaFile(args[0]))
			if os.Getenv("CMEKCTL_UPDATE_SCHEMA") != "" {
				updateMu.Lock()
				defer updateMu.Unlock()
				seen, err := jsonschema.Infer(doc)
				ts.Check(err)
				if b, err := os.ReadFile(path); err == nil {
					old, err := jsonschema.Parse(b)
					ts.Check(err)
					seen = jsonschema.Merge(old, seen)
				}
				out, err := jsonschema.Marshal(seen)
				ts.Check(err)
				ts.Check(os.MkdirAll(filepath.Dir(path), 0o755))
				ts.Check(os.WriteFile(path, out, 0o644))
				return
			}
			b, err := os.ReadFile(path)
			if err != nil {
				ts.Fatalf("no schema for %s: %v (see docs/json.md)", args[0], err)
			}
			s, err := jsonschema.Parse(b)
			ts.Check(err)
			if errs := jsonschema.Validate(s, doc); len(errs) > 0 {
				for _, e := range errs {
					ts.Logf("%s: %v", args[0], e)
				}
				ts.Fatalf("the %s of %s does not match %s", stream, args[0], schemaFile(args[0]))
			}
		},
	}
}

// TestEveryReportHasSchema: every verb with a report (every leaf command
// not marked as having none) has a schema, and a script checks a report of
// it against the schema; every schema is of a verb that exists.
func TestEveryReportHasSchema(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/store/*.txtar")
	scripts = append(scripts, more...)
	checked := map[string]bool{}
	// VERB@VARIANT is the report of a mode of VERB (@dry-run: its plan;
	// @cloud, @store: with --cloud, --store), in VERB@VARIANT.json.
	re := regexp.MustCompile(`(?m)^\s*jsonschema (?:-stderr )?'([^'@]+)(@[a-z-]+)?'`)
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			checked[m[1]] = true
		}
	}
	var verbs []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			for _, s := range c.Commands() {
				walk(s)
			}
			return
		}
		if c.Hidden || c.Name() == "help" || !commands.HasReport(c) {
			return
		}
		verb := strings.TrimPrefix(c.CommandPath(), "cmekctl ")
		verbs = append(verbs, verb)
		variants, _ := filepath.Glob(strings.TrimSuffix(schemaFile(verb), ".json") + "@*.json")
		if _, err := os.Stat(schemaFile(verb)); err != nil && len(variants) == 0 {
			t.Errorf("%s has -o json but no schema %s: write one (docs/json.md)", verb, schemaFile(verb))
		}
		if !checked[verb] {
			t.Errorf("%s has -o json but no script checks its report: add `jsonschema '%s'` after a run with -o json", verb, verb)
		}
	}
	walk(commands.NewRootCmd(commands.NewFactory()))
	files, _ := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	for _, f := range files {
		checkEnvelope(t, f)
		verb, _, _ := strings.Cut(strings.ReplaceAll(strings.TrimSuffix(filepath.Base(f), ".json"), "_", " "), "@")
		if !slices.Contains(verbs, verb) {
			t.Errorf("%s is the schema of no verb with a report", f)
		}
	}
}

// TestJSONDocsListEveryField: docs/json.md links every schema and names
// every top-level field of its report, so the contract's page cannot fall
// behind a field added to a schema.
func TestJSONDocsListEveryField(t *testing.T) {
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	for _, f := range files {
		base := filepath.Base(f)
		_, section, ok := strings.Cut(string(doc), "json-schema/"+base+")")
		if !ok {
			t.Errorf("docs/json.md does not link %s", base)
			continue
		}
		section, _, _ = strings.Cut(section, "\n### ")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jsonschema.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for name := range s.Properties {
			switch name {
			case "schema_version", "verb", "started_at", "finished_at":
				continue
			}
			if !strings.Contains(section, "`"+name+"`") {
				t.Errorf("docs/json.md: the section of %s does not name field %q", base, name)
			}
		}
	}
}

// checkEnvelope: a schema requires the envelope every report carries
// (docs/json.md): schema_version, verb, and RFC 3339 UTC started_at and
// finished_at.
func checkEnvelope(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jsonschema.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, f := range []string{"schema_version", "verb", "started_at", "finished_at"} {
		p, ok := s.Properties[f]
		switch {
		case !ok || !slices.Contains(s.Required, f):
			t.Errorf("%s: the envelope field %s is not required", file, f)
		case strings.HasSuffix(f, "_at") && p.Format != "date-time":
			t.Errorf("%s: %s is not a date-time", file, f)
		}
	}
}
