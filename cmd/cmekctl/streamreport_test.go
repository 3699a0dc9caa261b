package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestStreamReportCounts: the -o json report of the streaming verbs counts
// every byte once, also when a regular file is read and written at offsets
// by several workers (--parallel 4), and the chunks of the stream.
func TestStreamReportCounts(t *testing.T) {
	tmp := t.TempDir()
	kr := rssKeyring(t, tmp)
	const size = 5<<20 + 123 // 80 full chunks of 64 KiB and a short one
	plain := filepath.Join(tmp, "plain")
	if err := os.WriteFile(plain, bytes.Repeat([]byte("x"), size), 0o600); err != nil {
		t.Fatal(err)
	}
	type report struct {
		BytesIn, BytesOut, Chunks int64
		Output                    string
	}
	run := func(args ...string) report {
		t.Helper()
		code, stdout, stderr := cliRun(t, tmp, append(args, "--parallel", "4", "-o", "json")...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var r struct {
			BytesIn  int64  `json:"bytes_in"`
			BytesOut int64  `json:"bytes_out"`
			Chunks   int64  `json:"chunks"`
			Output   string `json:"output"`
		}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%v: %v: %s", args, err, stdout)
		}
		return report{r.BytesIn, r.BytesOut, r.Chunks, r.Output}
	}
	size0 := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	for _, verb := range []string{"backup", "data"} {
		enc := filepath.Join(tmp, verb+".cmek")
		dec := filepath.Join(tmp, verb+".out")
		r := run(verb, "encrypt", "--keyring", kr, plain, enc)
		if want := (report{size, size0(enc), 81, enc}); r != want {
			t.Errorf("%s encrypt: %+v, want %+v", verb, r, want)
		}
		r = run(verb, "decrypt", "--keyring", kr, enc, dec)
		if want := (report{size0(enc), size, 81, dec}); r != want {
			t.Errorf("%s decrypt: %+v, want %+v", verb, r, want)
		}
	}
}
