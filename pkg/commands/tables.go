package commands

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// writeTSV writes one table as tab-separated lines: its header line (unless
// --no-headers), then a line per row. A tab or line break inside a cell
// becomes a space, so that every line has the table's columns.
func writeTSV(w io.Writer, t table, headers bool) {
	clean := strings.NewReplacer("\t", " ", "\r\n", " ", "\n", " ", "\r", " ")
	line := func(cells []string) {
		out := make([]string, len(cells))
		for i, c := range cells {
			out[i] = clean.Replace(c)
		}
		fmt.Fprintln(w, strings.Join(out, "\t"))
	}
	if headers && len(t.Headers) > 0 {
		line(t.Headers)
	}
	for _, r := range t.Rows {
		line(r)
	}
}

// minColumn is the narrowest a column is cut to when fitting a table.
const minColumn = 8

// renderTable draws an aligned table no wider than width (0: any width):
// while it is too wide, the widest column is cut (its header too), its
// cells ending in "…", down to minColumn. A table still too wide (many
// columns on a narrow terminal) is drawn as records instead: one
// "HEADER  value" line per column, a blank line between rows.
func renderTable(w io.Writer, t table, headers bool, width int) error {
	head, rows := t.Headers, t.Rows
	for range 64 {
		var buf bytes.Buffer
		if err := drawTable(&buf, head, rows, headers); err != nil {
			return err
		}
		over := tableWidth(buf.String()) - width
		if width <= 0 || over <= 0 {
			_, err := w.Write(buf.Bytes())
			return err
		}
		all := rows
		if headers {
			all = append([][]string{head}, rows...)
		}
		col, cur := widestColumn(all)
		if cur <= minColumn {
			break
		}
		all = cutColumn(all, col, max(minColumn, cur-over))
		if headers {
			head, all = all[0], all[1:]
		}
		rows = all
	}
	writeRecords(w, t, width)
	return nil
}

// writeRecords writes each row as lines of "HEADER  value", values cut to
// fit width, rows separated by a blank line.
func writeRecords(w io.Writer, t table, width int) {
	label := 0
	for _, h := range t.Headers {
		label = max(label, utf8.RuneCountInString(h))
	}
	room := max(minColumn, width-label-2)
	for i, r := range t.Rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		for j, v := range r {
			if j < len(t.Headers) {
				if rs := []rune(v); len(rs) > room {
					v = string(rs[:room-1]) + "…"
				}
				fmt.Fprintf(w, "%-*s  %s\n", label, strings.ToUpper(t.Headers[j]), v)
			}
		}
	}
}

// drawTable draws the table, headers in capitals (tablewriter's own header
// formatting, which also adds spaces, is off: a header is as wide as its
// text, so fitting can measure it).
func drawTable(w io.Writer, head []string, rows [][]string, headers bool) error {
	tb := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	if headers {
		upper := make([]string, len(head))
		for i, h := range head {
			upper[i] = strings.ToUpper(h)
		}
		tb.Header(toAny(upper)...)
	}
	for _, r := range rows {
		if err := tb.Append(toAny(r)...); err != nil {
			return err
		}
	}
	return tb.Render()
}

// tableWidth is the widest line of a drawn table, in runes.
func tableWidth(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, utf8.RuneCountInString(l))
	}
	return n
}

// widestColumn is the column with the widest cell, and that width.
func widestColumn(rows [][]string) (col, width int) {
	for _, r := range rows {
		for i, c := range r {
			if n := utf8.RuneCountInString(c); n > width {
				col, width = i, n
			}
		}
	}
	return col, width
}

// cutColumn returns rows with column col's cells cut to n runes.
func cutColumn(rows [][]string, col, n int) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = append([]string(nil), r...)
		if col < len(r) {
			if rs := []rune(r[col]); len(rs) > n {
				out[i][col] = string(rs[:n-1]) + "…"
			}
		}
	}
	return out
}
