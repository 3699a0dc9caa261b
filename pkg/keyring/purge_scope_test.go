package keyring

import (
	"bytes"
	"os"
	"path/filepath"
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
