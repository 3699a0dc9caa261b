package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// macLog makes a log with two format-1 entries, a MAC chain started by
// Init, and n more entries; it returns the log's path and the exported key.
func macLog(t *testing.T, n int) (string, ExportedKey) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := l.Append(Entry{Verb: "status", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	exp := filepath.Join(dir, "auditor.key")
	if _, err := l.Init(exp, false); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(Entry{Verb: "kms destroy", Op: "command", CMEKURI: "file-kms:///k" + string(rune('a'+i)), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	x, err := ReadExportedKey(exp)
	if err != nil {
		t.Fatal(err)
	}
	return path, x
}

func macProblems(t *testing.T, path string, es []Entry, keys ...ExportedKey) []Problem {
	t.Helper()
	w, err := WriterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return append(Verify(es), VerifyMACs(es, keys, w)...)
}

// forge is what someone holding the log and the writer's current key (its
// key file) can do: recompute sequence numbers, the hash chain, and every
// MAC under the one key they have.
func forge(t *testing.T, path string, es []Entry) []Entry {
	t.Helper()
	w, err := WriterKey(path)
	if err != nil || w == nil {
		t.Fatal(w, err)
	}
	key, _ := hex.DecodeString(w.Key)
	out := rechain(es)
	for i := range out {
		if out[i].MAC != "" && out[i].Hash != es[i].Hash { // an entry left as it was keeps its MAC
			out[i].MAC = entryMAC(key, out[i].Hash)
		}
	}
	return out
}

func writeEntries(t *testing.T, path string, es []Entry) {
	t.Helper()
	var b bytes.Buffer
	for _, e := range es {
		line, _ := json.Marshal(e)
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMACChainDetectsRewrites: an edit, a deletion with the rest
// re-chained, and a cut tail each pass the hash chain when the attacker
// recomputes it, and each is caught by the MAC chain checked with the key
// exported at audit init, though the attacker holds the writer's key.
func TestMACChainDetectsRewrites(t *testing.T) {
	path, x := macLog(t, 6)
	es, err := Read(path)
	if err != nil || len(es) != 9 {
		t.Fatalf("read: %d entries, %v", len(es), err)
	}
	if es[0].MAC != "" || es[1].MAC != "" || es[2].MAC == "" || es[2].Verb != "audit init" || x.Seq != 3 {
		t.Fatalf("chain start: entry 1 mac %q, entry 3 %q mac %q, exported seq %d", es[0].MAC, es[2].Verb, es[2].MAC, x.Seq)
	}
	if p := macProblems(t, path, es, x); len(p) != 0 {
		t.Fatalf("intact log: %v", p)
	}
	if x.Log != path {
		t.Fatalf("exported key names %q", x.Log)
	}
	edited := append([]Entry(nil), es...)
	edited[4].CMEKURI = "file-kms:///other"
	cases := []struct {
		name string
		log  []Entry
		want string // the first problem
	}{
		{"entry edited, re-chained, re-MACed", forge(t, path, edited), "entry 5's MAC does not verify"},
		{"entry deleted, re-chained, re-MACed", forge(t, path, append(append([]Entry(nil), es[:4]...), es[5:]...)), "entry 5's MAC does not verify"},
		{"tail cut", es[:7], "key is at entry 10, but the log ends at entry 7: the tail was cut"},
		{"entry added without a MAC", forge(t, path, append(es[:9:9], Entry{Verb: "kms destroy", Result: "ok"})), "entry 10 has no MAC"},
	}
	for _, c := range cases {
		if p := Verify(c.log); len(p) != 0 {
			t.Fatalf("%s: the hash chain alone already sees it (%v); the case tests nothing", c.name, p)
		}
		p := VerifyMACs(c.log, []ExportedKey{x}, mustWriter(t, path))
		if len(p) == 0 || !strings.Contains(p[0].Reason, c.want) {
			t.Errorf("%s: want %q first, got %v", c.name, c.want, p)
		}
	}
	// The cut tail with the key file put back to match: the writer only
	// ever had later keys, so it cannot derive the one the cut log needs.
	writeEntries(t, path, es[:7])
	w := mustWriter(t, path)
	key, _ := hex.DecodeString(w.Key)
	if err := writeKeyFile(KeyFile(path), chainKey{Seq: 8, Key: key}); err != nil {
		t.Fatal(err)
	}
	if p := macProblems(t, path, es[:7], x); len(p) != 1 || !strings.Contains(p[0].Reason, "does not derive") {
		t.Fatalf("key file moved back: %v", p)
	}
	// And the key file deleted.
	if err := os.Remove(KeyFile(path)); err != nil {
		t.Fatal(err)
	}
	if p := macProblems(t, path, es[:7], x); len(p) != 1 || !strings.Contains(p[0].Reason, "key file is gone") {
		t.Fatalf("key file deleted: %v", p)
	}
}

func mustWriter(t *testing.T, path string) *ExportedKey {
	t.Helper()
	w, err := WriterKey(path)
	if err != nil || w == nil {
		t.Fatal(w, err)
	}
	return w
}

// TestMACChainWriterRefusesACutLog: after the tail is cut, the writer's
// key is further along than the log, and Append refuses rather than MAC
// an entry with the wrong key.
func TestMACChainWriterRefusesACutLog(t *testing.T) {
	path, _ := macLog(t, 4)
	es, _ := Read(path)
	writeEntries(t, path, es[:5])
	l, _ := Open(path, nil)
	err := l.Append(Entry{Verb: "revoke", Op: "start", Result: "started"})
	if err == nil || !strings.Contains(err.Error(), "the MAC key is at entry 8 but the log's next entry is 6") {
		t.Fatalf("append to a cut log: %v", err)
	}
}

// TestMACChainResumesAfterACrash: an append that stopped after its entry
// and before the key's advance is finished by the next append, and the
// log verifies.
func TestMACChainResumesAfterACrash(t *testing.T) {
	path, x := macLog(t, 2)
	before, err := os.ReadFile(KeyFile(path))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := Open(path, nil)
	if err := l.Append(Entry{Verb: "unlock", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(KeyFile(path), before, 0o600); err != nil { // the advance never happened
		t.Fatal(err)
	}
	es, _ := Read(path)
	if p := macProblems(t, path, es, x); len(p) != 0 {
		t.Fatalf("crash window: %v", p)
	}
	if err := l.Append(Entry{Verb: "unlock", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	es, _ = Read(path)
	if p := macProblems(t, path, es, x); len(p) != 0 || len(es) != 7 {
		t.Fatalf("after the crash: %d entries, %v", len(es), p)
	}
}

// TestMACChainInit: the exported key and the key file are 0600, an
// existing export is never overwritten, a second chain needs force, and
// the auditor needs both keys to verify past the second start.
func TestMACChainInit(t *testing.T) {
	path, x := macLog(t, 1)
	dir := filepath.Dir(path)
	for _, f := range []string{KeyFile(path), filepath.Join(dir, "auditor.key")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	l, _ := Open(path, nil)
	if _, err := l.Init(filepath.Join(dir, "second.key"), false); err == nil || !strings.Contains(err.Error(), "has a MAC chain already") {
		t.Fatalf("second init without force: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "second.key")); err == nil {
		t.Fatal("a refused init left an export")
	}
	if _, err := l.Init(filepath.Join(dir, "auditor.key"), true); err == nil {
		t.Fatal("init overwrote an existing export")
	}
	if _, err := l.Init(filepath.Join(dir, "second.key"), true); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Entry{Verb: "revoke", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	y, err := ReadExportedKey(filepath.Join(dir, "second.key"))
	if err != nil {
		t.Fatal(err)
	}
	es, _ := Read(path)
	if p := macProblems(t, path, es, x, y); len(p) != 0 {
		t.Fatalf("both keys: %v", p)
	}
	if p := macProblems(t, path, es, x); len(p) == 0 {
		t.Fatal("a chain the auditor does not hold passed")
	}
	// No key material in the log itself.
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(x.Key)) || bytes.Contains(raw, []byte(y.Key)) {
		t.Fatal("a chain key is in the log")
	}
}

// TestFormat1LogStillVerifies: a log written without a chain verifies
// with the hash chain, and a format-1 reader's hash (no MAC field) is the
// hash a format-2 entry carries.
func TestFormat1LogStillVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, _ := Open(path, nil)
	for range 3 {
		if err := l.Append(Entry{Verb: "status", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := Read(path)
	if p := Verify(es); len(p) != 0 || es[2].MAC != "" {
		t.Fatalf("format 1: %v", p)
	}
	if p := VerifyMACs(es, nil, nil); len(p) != 0 {
		t.Fatalf("no keys: %v", p)
	}
	// What a format-1 reader hashes: the entry without hash and MAC (its
	// struct has no MAC field; omitempty drops ours when empty).
	path2, _ := macLog(t, 1)
	es2, _ := Read(path2)
	e := es2[len(es2)-1]
	e.Hash, e.MAC = "", ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	if bytes.Contains(b, []byte(`"mac"`)) || hex.EncodeToString(sum[:]) != es2[len(es2)-1].Hash || es2[len(es2)-1].MAC == "" {
		t.Fatal("the MAC is inside the hash: a format-1 reader would see every format-2 entry as edited")
	}
}
