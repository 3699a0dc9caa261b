package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// SchemaVersion is the major version of the JSON contract (docs/json.md).
// Within one major version, reports only gain fields, enum values and verbs;
// a rename, a removal or a changed type or meaning raises it.
const SchemaVersion = 1

// envelope marshals a report and puts the fields every -o json report
// carries first: schema_version, verb, started_at and finished_at (RFC 3339,
// UTC). A field the report already has (a verify report's own started_at)
// is left as the report has it.
func (p printer) envelope(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("report of %s is not a JSON object", p.verb)
	}
	var have map[string]json.RawMessage
	if err := json.Unmarshal(b, &have); err != nil {
		return nil, err
	}
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	finished := now().UTC()
	started := p.started.UTC()
	if p.started.IsZero() {
		started = finished
	}
	head := []struct {
		key string
		val any
	}{
		{"schema_version", SchemaVersion},
		{"verb", p.verb},
		{"started_at", started.Format(time.RFC3339Nano)},
		{"finished_at", finished.Format(time.RFC3339Nano)},
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for _, h := range head {
		if _, ok := have[h.key]; ok {
			continue
		}
		k, _ := json.Marshal(h.key)
		val, err := json.Marshal(h.val)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(val)
		buf.WriteByte(',')
	}
	rest := bytes.TrimSpace(b[1:])
	if len(rest) == 1 { // "}": the report had no fields
		buf.Truncate(buf.Len() - 1)
	}
	buf.Write(rest)
	return buf.Bytes(), nil
}

// noReportAnnotation marks a verb that writes no report: -o json and -o yaml
// are refused for it (they would be silently ignored).
const noReportAnnotation = "cmekctl/no-report"

// withoutReport marks c as writing no report, and returns it.
func withoutReport(c *cobra.Command) *cobra.Command {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[noReportAnnotation] = "true"
	return c
}

// HasReport reports whether a leaf command writes a report with -o json
// (every one with a report has a schema: docs/json.md).
func HasReport(c *cobra.Command) bool {
	for p := c; p != nil; p = p.Parent() {
		if p.Name() == "completion" || p.Annotations[noReportAnnotation] != "" {
			return false
		}
	}
	return c.Runnable()
}

// checkReport refuses -o json or -o yaml for a verb without a report.
func checkReport(c *cobra.Command, format string) error {
	if (format == OutputJSON || format == OutputYAML) && c.Runnable() && !HasReport(c) {
		return usageError("leave -o out; see docs/json.md for the verbs that have a report",
			"%s writes no report: -o %s is not accepted", strings.TrimPrefix(c.CommandPath(), "cmekctl "), format)
	}
	return nil
}

// absKeyrings makes the --keyring and --from directories absolute before a
// verb runs, so that its reports, tables and errors name them the same way
// whatever the working directory (docs/json.md: absolute keyring paths).
func absKeyrings(cmd *cobra.Command) error {
	for _, name := range []string{"keyring", "from"} {
		fl := cmd.Flags().Lookup(name)
		if fl == nil || !fl.Changed {
			continue
		}
		vals := flagValues(cmd, name)
		abs := make([]string, len(vals))
		for i, v := range vals {
			abs[i] = v
			if v != "" && v != "-" && !strings.Contains(v, "://") {
				if a, err := filepath.Abs(v); err == nil {
					abs[i] = a
				}
			}
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			if err := sv.Replace(abs); err != nil {
				return err
			}
		} else if len(abs) == 1 {
			if err := fl.Value.Set(abs[0]); err != nil {
				return err
			}
		}
	}
	return nil
}
