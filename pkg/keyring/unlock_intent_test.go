package keyring_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile/faultfs"
)

// TestUnlockRecordsIntentBeforeWriting: when the keyring cannot be saved,
// unlock writes no plaintext at all (today's unlock wrote the key files,
// then failed to record them: revoke never purged them).
func TestUnlockRecordsIntentBeforeWriting(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c-intent", 1, 1)
	dir := c.dirs()[0]
	out := filepath.Join(t.TempDir(), "run")
	fsys := faultfs.New()
	fsys.FailKind(faultfs.Rename, syscall.EACCES)
	_, err := keyring.Unlock(context.Background(), k.env(), keyring.Store{Dir: dir, FS: fsys}, keyring.UnlockOptions{Out: out, AllowDisk: true, StorePath: "*"})
	if err == nil {
		t.Fatal("unlock succeeded with a keyring that cannot be saved")
	}
	if left := keyring.FilesIn(out); len(left) != 0 {
		t.Fatalf("unlock wrote %v before recording the directory", left)
	}
}

// TestRevokePurgesWhatAKilledUnlockLeft: the final save fails after the key
// files are written (as a kill before it would): the pending record names
// the directory, so verify-destroyed finds every file in it and revoke
// purges them all, a temporary file and a dotfile included.
func TestRevokePurgesWhatAKilledUnlockLeft(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c-killed", 1, 1)
	dir := c.dirs()[0]
	out := filepath.Join(t.TempDir(), "run")
	fsys := faultfs.New()
	fsys.FailNth(faultfs.Rename, 2, syscall.EACCES) // the intent saves; the record of the files does not
	if _, err := keyring.Unlock(context.Background(), k.env(), keyring.Store{Dir: dir, FS: fsys}, keyring.UnlockOptions{Out: out, AllowDisk: true, StorePath: "*"}); err == nil {
		t.Fatal("unlock succeeded though its final save failed")
	}
	written := keyring.FilesIn(out)
	if len(written) == 0 {
		t.Fatal("no key file written: the test does not reach the case")
	}
	// What a kill at the rename leaves, and a stray dotfile.
	for _, name := range []string{".active.key.tmp-12345", ".stray"} {
		if err := os.WriteFile(filepath.Join(out, name), make([]byte, 32), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := keyring.Store{Dir: dir}
	kr, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(kr.Unlocks) != 1 || !kr.Unlocks[0].Pending || kr.Unlocks[0].Dir != out {
		t.Fatalf("unlock records %+v, want one pending record of %s", kr.Unlocks, out)
	}
	left := keyring.LeftoverKeyFiles(s, kr)
	for _, want := range append(written, filepath.Join(out, ".active.key.tmp-12345"), filepath.Join(out, ".stray")) {
		if !slices.Contains(left, want) {
			t.Errorf("verify-destroyed's search misses %s (found %v)", want, left)
		}
	}
	purged, err := keyring.PurgeUnlocked(kr, k.clock)
	if err != nil {
		t.Fatal(err)
	}
	// The temporary file is unlock's; the stray file is not, and is left
	// (verify-destroyed reports it, above).
	if left := keyring.FilesIn(out); len(purged) != len(written)+1 || !slices.Equal(left, []string{filepath.Join(out, ".stray")}) {
		t.Fatalf("purged %v; left %v", purged, left)
	}
}

// TestUnlockDirExtra: a directory no record names (an unlock from another
// keyring copy, a hand copy) is searched and purged when given.
func TestUnlockDirExtra(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c-extra", 1, 1)
	s := keyring.Store{Dir: c.dirs()[0]}
	kr, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	extra := t.TempDir()
	f := filepath.Join(extra, "active.key")
	if err := os.WriteFile(f, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(keyring.LeftoverKeyFiles(s, kr), f) {
		t.Fatal("found without --unlock-dir")
	}
	if !slices.Contains(keyring.LeftoverKeyFiles(s, kr, extra), f) {
		t.Fatal("not found with --unlock-dir")
	}
	if purged, err := keyring.PurgeUnlocked(kr, k.clock, extra); err != nil || !slices.Equal(purged, []string{f}) {
		t.Fatalf("purge: %v %v", purged, err)
	}
}
