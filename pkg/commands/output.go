package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"go.yaml.in/yaml/v3"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
)

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// table is one table of a command's output.
type table struct {
	Title   string
	Headers []string
	Rows    [][]string
}

// printer writes a command's result: an aligned table on a terminal,
// tab-separated lines (no header, RFC 3339 times) when piped, or JSON/YAML
// of the same data with stable field names.
type printer struct {
	io     *iostreams.IOStreams
	format string
	// verb, started and now fill the report's envelope (envelope.go).
	verb    string
	started time.Time
	now     func() time.Time
	// w is where the report goes (nil: stdout).
	w io.Writer
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

func (p printer) tty() bool { return p.io.IsStdoutTTY() }

// when formats a time for this output.
func (p printer) when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if p.tty() {
		return t.Local().Format("2006-01-02 15:04")
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
		if p.tty() {
			if i > 0 {
				fmt.Fprintln(p.io.Out)
			}
			if t.Title != "" {
				fmt.Fprintln(p.io.Out, t.Title)
			}
			if err := renderTable(p.io.Out, t); err != nil {
				return err
			}
			continue
		}
		for _, r := range t.Rows {
			fmt.Fprintln(p.io.Out, strings.Join(r, "\t"))
		}
	}
	return nil
}

func renderTable(w io.Writer, t table) error {
	tw := tablewriter.NewTable(w)
	tw.Header(toAny(t.Headers)...)
	for _, r := range t.Rows {
		if err := tw.Append(toAny(r)...); err != nil {
			return err
		}
	}
	return tw.Render()
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
	case OutputTable, OutputJSON, OutputYAML:
		return nil
	}
	return usageError("use -o table, -o json or -o yaml", "unknown output format %q", format)
}
