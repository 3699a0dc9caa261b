package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestChainDetectsEditsAndDeletions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s", "audit.log")
	l, err := Open(path, func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) })
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"wrap", "unwrap", "describe", "unwrap"} {
		if err := l.Append(Entry{Verb: "test", Op: op, Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	es, err := Read(path)
	if err != nil || len(es) != 4 {
		t.Fatalf("read: %d %v", len(es), err)
	}
	if p := Verify(es); len(p) != 0 {
		t.Fatalf("clean log: %v", p)
	}
	data, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))

	// Delete line 2.
	del := append(append([][]byte{}, lines[0]), lines[2:]...)
	if err := os.WriteFile(path, append(bytes.Join(del, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	es, _ = Read(path)
	if p := Verify(es); len(p) != 1 || p[0].Line != 2 {
		t.Fatalf("deletion: %v", p)
	}
	// Edit line 3.
	edited := append([][]byte{}, lines...)
	edited[2] = bytes.Replace(edited[2], []byte(`"op":"describe"`), []byte(`"op":"wrap"`), 1)
	if err := os.WriteFile(path, append(bytes.Join(edited, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	es, _ = Read(path)
	if p := Verify(es); len(p) != 1 || p[0].Line != 3 {
		t.Fatalf("edit: %v", p)
	}
}

func TestRefusesOpenLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, _ := Open(path, nil)
	if err := l.Append(Entry{Verb: "x", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	if err := l.Append(Entry{Verb: "x", Result: "ok"}); err == nil {
		t.Fatal("appended to a world-readable log")
	}
}
