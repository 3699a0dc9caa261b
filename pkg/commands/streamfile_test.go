package commands

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The stream reads a regular input file at offsets only through these
// methods: they must see the file, and must not for a pipe or with
// --expect-bytes (whose count needs the sequential reads).
func TestGuardedReaderPositional(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	g := &guardedReader{ctx: ctx, r: fh, expect: -1}
	if fi, err := g.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != 10 {
		t.Fatalf("regular file: %v, %v", fi, err)
	}
	b := make([]byte, 3)
	if n, err := g.ReadAt(b, 4); n != 3 || err != nil || string(b) != "456" {
		t.Fatalf("ReadAt: %d %v %q", n, err, b)
	}
	cancel(&InterruptError{Signal: 2})
	if _, err := g.ReadAt(b, 0); interrupted(ctx) == nil || err == nil {
		t.Fatalf("ReadAt after an interrupt: %v", err)
	}

	if _, err := (&guardedReader{ctx: context.Background(), r: fh, expect: 10}).Stat(); err == nil {
		t.Fatal("--expect-bytes input offered for positional reads")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	fi, err := (&guardedReader{ctx: context.Background(), r: pr, expect: -1}).Stat()
	if err == nil && fi.Mode().IsRegular() {
		t.Fatal("a pipe looks like a regular file")
	}
}

// The output side: the temporary output file is offered for positional
// writes, stdout-like writers are not, and an interrupt stops WriteAt.
func TestGuardedWriterPositional(t *testing.T) {
	fh, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	g := &guardedWriter{ctx: ctx, w: fh}
	if fi, err := g.Stat(); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("regular file: %v", err)
	}
	if _, err := g.WriteAt([]byte("abc"), 5); err != nil {
		t.Fatal(err)
	}
	cancel(&InterruptError{Signal: 2})
	if _, err := g.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("WriteAt after an interrupt")
	}
	var buf strings.Builder
	if _, err := (&guardedWriter{ctx: context.Background(), w: &buf}).Stat(); err == nil {
		t.Fatal("a non-file writer offered for positional writes")
	}
}
