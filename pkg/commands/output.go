package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
)

// Output formats. With no -o, a terminal gets table and a pipe tsv.
const (
	OutputTable = "table"
	OutputTSV   = "tsv"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// table is one table of a command's output.
type table struct {
	Title   string
	Headers []string
	Rows    [][]string
}

// printer writes a command's result: an aligned table (fitted to the
// terminal's width, local times with their zone), tab-separated lines (a
// header line per table, RFC 3339 UTC times), or JSON/YAML of the same data
// with stable field names (docs/json.md).
type printer struct {
	io     *iostreams.IOStreams
	format string
	// verb, started and now fill the report's envelope (envelope.go).
	verb    string
	started time.Time
	now     func() time.Time
	// w is where the report goes (nil: stdout).
	w io.Writer
	// noHeaders drops the tables' header lines (--no-headers).
	noHeaders bool
}

// out is where the report goes.
func (p printer) out() io.Writer {
	if p.w != nil {
		return p.w
	}
	return p.io.Out
}

// to returns the printer writing its report to w.
func (p printer) to(w io.Writer) printer {
	p.w = w
	return p
}

// structured reports whether the output is a report (JSON or YAML), not a table.
func (p printer) structured() bool { return p.format == OutputJSON || p.format == OutputYAML }

// text reports whether the output is for reading (a table or TSV).
func (p printer) text() bool { return p.format == OutputTable || p.format == OutputTSV }

// when formats a time for this output: in a table local time with its zone,
// in TSV and elsewhere RFC 3339 in UTC.
func (p printer) when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if p.format == OutputTable {
		return t.Local().Format("2006-01-02 15:04 MST")
	}
	return t.UTC().Format(time.RFC3339)
}

func (p printer) print(v any, tables ...table) error {
	switch p.format {
	case OutputJSON:
		b, err := p.envelope(v)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err = p.out().Write(buf.Bytes())
		return err
	case OutputYAML:
		b, err := p.envelope(v)
		if err != nil {
			return err
		}
		var generic any
		if err := yaml.Unmarshal(b, &generic); err != nil {
			return err
		}
		out, err := yaml.Marshal(generic)
		if err != nil {
			return err
		}
		_, err = p.out().Write(out)
		return err
	}
	for i, t := range tables {
		if i > 0 {
			fmt.Fprintln(p.out())
		}
		if p.format == OutputTSV {
			writeTSV(p.out(), t, !p.noHeaders)
			continue
		}
		if t.Title != "" {
			fmt.Fprintln(p.out(), t.Title)
		}
		if err := renderTable(p.out(), t, !p.noHeaders, p.io.Width()); err != nil {
			return err
		}
	}
	return nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

func checkOutput(format string) error {
	switch format {
	case OutputTable, OutputTSV, OutputJSON, OutputYAML:
		return nil
	}
	return usageError("use -o table, -o tsv, -o json or -o yaml", "unknown output format %q", format)
}
