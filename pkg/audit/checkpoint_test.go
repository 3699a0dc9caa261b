package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rechain recomputes sequence numbers and the hash chain, as someone who
// can write the log can: the chain alone then looks intact.
func rechain(es []Entry) []Entry {
	out := make([]Entry, len(es))
	prev := genesis
	for i, e := range es {
		e.Seq, e.Prev = uint64(i+1), prev
		e.Hash = hashOf(e)
		prev = e.Hash
		out[i] = e
	}
	return out
}

// TestCheckpointDetectsTampering: truncation, deletion with re-chaining,
// deletion of the whole log and rollback to an older copy each pass the
// hash chain, and each is detected against a signed checkpoint.
func TestCheckpointDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var older []Entry
	for i := range 6 {
		if err := l.Append(Entry{Verb: "kms destroy", Op: "command", CMEKURI: "file-kms:///k" + string(rune('0'+i)), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			older, _ = Read(path)
		}
	}
	es, err := Read(path)
	if err != nil || len(es) != 6 || es[0].Seq != 1 || es[5].Seq != 6 {
		t.Fatalf("read: %d entries, %v", len(es), err)
	}
	key, err := LoadOrCreateSigningKey(filepath.Join(dir, "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := MakeCheckpoint(path, es, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.CheckSignature(""); err != nil {
		t.Fatal(err)
	}
	if p := VerifyAgainst(es, cp); len(p) != 0 {
		t.Fatalf("intact log: %v", p)
	}
	deleted := rechain(append(append([]Entry(nil), es[:2]...), es[3:]...))
	cases := map[string][]Entry{
		"tail truncated":      es[:4],
		"deleted, re-chained": deleted,
		"deleted whole":       nil,
		"rolled back":         older,
	}
	for name, log := range cases {
		if name != "deleted whole" && len(Verify(log)) != 0 {
			t.Fatalf("%s: the hash chain alone already sees it; the case tests nothing", name)
		}
		if p := VerifyAgainst(log, cp); len(p) == 0 {
			t.Errorf("%s: not detected against the checkpoint", name)
		}
	}
	// A checkpoint edited to vouch for a shorter log does not verify.
	forged := cp
	forged.Seq = 4
	if err := forged.CheckSignature(""); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("forged checkpoint: %v", err)
	}
	if err := cp.CheckSignature(strings.Repeat("00", 32)); err == nil {
		t.Fatal("a checkpoint signed by another key passed")
	}
	fi, _ := os.Stat(filepath.Join(dir, "checkpoint.key"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode %v", fi.Mode().Perm())
	}
}
