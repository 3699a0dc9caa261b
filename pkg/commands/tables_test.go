package commands

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
)

func TestRenderTableFitsWidth(t *testing.T) {
	tb := table{Headers: []string{"region", "keyring"}, Rows: [][]string{
		{"east", "/var/lib/cockroach/a/very/long/path/to/the/keyring/of/node/one"},
		{"west", "/short"},
	}}
	var wide bytes.Buffer
	if err := renderTable(&wide, tb, true, 0); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(wide.String(), "…") {
		t.Fatalf("cut with no width:\n%s", wide.String())
	}
	for _, width := range []int{60, 40, 30} {
		var b bytes.Buffer
		if err := renderTable(&b, tb, true, width); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			if n := utf8.RuneCountInString(l); n > width {
				t.Errorf("width %d: line of %d: %q", width, n, l)
			}
		}
		if !strings.Contains(b.String(), "/var/lib/") || !strings.Contains(b.String(), "…") || !strings.Contains(b.String(), "/short") {
			t.Errorf("width %d: the keyring column not cut at its end:\n%s", width, b.String())
		}
	}
}

func TestTSV(t *testing.T) {
	var b bytes.Buffer
	writeTSV(&b, table{Headers: []string{"a", "b c"}, Rows: [][]string{{"x\ty", "line\nbreak"}}}, true)
	if want := "a\tb c\nx y\tline break\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	writeTSV(&b, table{Headers: []string{"a"}, Rows: [][]string{{"1"}}}, false)
	if b.String() != "1\n" {
		t.Errorf("--no-headers: got %q", b.String())
	}
}

func TestWhenShowsZone(t *testing.T) {
	io, _, _, _ := iostreams.Test()
	at := time.Date(2026, 11, 1, 12, 30, 0, 0, time.FixedZone("X", 3600))
	if got := (printer{io: io, format: OutputTSV}).when(at); got != "2026-11-01T11:30:00Z" {
		t.Errorf("tsv: %q", got)
	}
	got := (printer{io: io, format: OutputTable}).when(at)
	if zone, _ := at.Local().Zone(); !strings.HasSuffix(got, " "+zone) {
		t.Errorf("table: %q has no zone", got)
	}
}

// A table with more columns than a narrow terminal can hold even cut is
// drawn as records ("HEADER  value" lines), every line within the width.
func TestRenderTableRecords(t *testing.T) {
	tb := table{Headers: []string{"a", "b", "c", "d", "e", "f", "g", "h", "data key created"}}
	tb.Rows = [][]string{{"1", "2", "3", "4", "5", "6", "7", "8", "2026-11-01 12:00 UTC and much more text than fits"}}
	var b bytes.Buffer
	if err := renderTable(&b, tb, true, 40); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "│") || !strings.Contains(out, "DATA KEY CREATED  2026-11-01 12:00 UTC") {
		t.Fatalf("not records:\n%s", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if n := utf8.RuneCountInString(l); n > 40 {
			t.Errorf("line of %d: %q", n, l)
		}
	}
}
