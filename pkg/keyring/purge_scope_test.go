package keyring

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A keyring whose unlock record names a file outside the record's
// directory (a changed keyring) does not make revoke's purge zero it.
func TestPurgeOnlyInsideRecordedDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(dir, "active.key")
	outside := filepath.Join(base, "precious.txt")
	for _, p := range []string{inside, outside} {
		if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kr := &Keyring{Unlocks: []UnlockRecord{{Dir: dir, Files: []string{inside, outside, filepath.Join(dir, "..", "precious.txt")}}}}
	purged, err := PurgeUnlocked(kr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(outside); err != nil || !bytes.Equal(b, []byte("data")) {
		t.Fatalf("a file outside the recorded directory was purged (%v): %q; purged %v", err, b, purged)
	}
	if _, err := os.Stat(inside); !os.IsNotExist(err) {
		t.Fatalf("the file unlock wrote was not purged: %v", err)
	}
}

// TestUnlockFileName: the names revoke purges in a recorded directory are
// exactly those keyFileNamer gives (and their temporary files).
func TestUnlockFileName(t *testing.T) {
	n := keyFileNamer{}
	active := "3f2a" + strings.Repeat("0", 60)
	for _, c := range []struct{ id, format string }{{active, FormatCockroachV1}, {active, FormatCockroachV2}, {strings.Repeat("ab", 32), FormatCockroachV1}, {strings.Repeat("ab", 32), FormatRaw}, {"a-kid-that-is-not-hex", FormatCockroachV2}} {
		name := n.name(c.id, c.format, active)
		for _, v := range []string{name, "." + name + ".tmp-123-abc"} {
			if !unlockFileName(v) {
				t.Errorf("%s (unlock's name) is not purged", v)
			}
		}
	}
	for _, v := range []string{".stray", "authorized_keys", "active.key.bak", "old-12.key", "old-zzzzzzzzzzzzzzzz.key", "active-other.key", ".active.key", "keyring.json", "..active.key.tmp-1"} {
		if unlockFileName(v) {
			t.Errorf("%s (not unlock's) would be purged", v)
		}
	}
}
