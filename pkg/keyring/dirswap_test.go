//go:build linux

package keyring_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// swapForLink moves dir away (to dir+".moved") and puts a symbolic link to
// target in its place: what a user who can write dir's parent can do
// between a check of a path and its use.
func swapForLink(t *testing.T, dir, target string) {
	t.Helper()
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
}

func entries(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestUnlockWritesIntoTheCheckedDirectories: the directories above the
// keyring and above --out are swapped for links to a decoy after unlock
// checked them (while it waits on the KMS), so a path opened again would
// lead to the decoy. The key files and the keyring's record land in the
// directories checked; the decoy gets nothing. (Before, unlock opened each
// path again: the keys went to the decoy's tmpfs check-free directory.)
func TestUnlockWritesIntoTheCheckedDirectories(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c-swap", 1, 1)
	dir := c.dirs()[0]            // base/region-1/node-1
	krParent := filepath.Dir(dir) // base/region-1
	outParent := filepath.Join(t.TempDir(), "p")
	out := filepath.Join(outParent, "run")
	decoy := t.TempDir()
	for _, d := range []string{outParent, filepath.Join(decoy, "out", "run"), filepath.Join(decoy, "kr", filepath.Base(dir))} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	env := k.env()
	open := env.Open
	env.Open = func(uri string) (provider.Key, error) {
		once.Do(func() {
			swapForLink(t, outParent, filepath.Join(decoy, "out"))
			swapForLink(t, krParent, filepath.Join(decoy, "kr"))
		})
		return open(uri)
	}
	res, err := keyring.Unlock(context.Background(), env, keyring.Store{Dir: dir}, keyring.UnlockOptions{Out: out, AllowDisk: true, StorePath: "*"})
	if err != nil {
		t.Fatal(err)
	}
	if left := entries(decoy); len(left) != 0 {
		t.Fatalf("unlock wrote through a swapped parent into %v", left)
	}
	for _, f := range res.Files {
		moved := filepath.Join(outParent+".moved", "run", filepath.Base(f))
		if fi, err := os.Stat(moved); err != nil || fi.Size() == 0 {
			t.Fatalf("%s is not in the directory checked: %v", moved, err)
		}
	}
	kr, err := keyring.Store{Dir: filepath.Join(krParent+".moved", filepath.Base(dir))}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(kr.Unlocks) != 1 || kr.Unlocks[0].Pending || len(kr.Unlocks[0].Files) == 0 {
		t.Fatalf("the checked keyring does not record the unlock: %+v", kr.Unlocks)
	}
}

// TestPurgeRefusesASwappableParent: the directory an unlock record names
// sits under one that others can write (no sticky bit), and its parent was
// swapped for a link to another directory holding a file of unlock's name.
// The purge refuses, naming the directory, and zeroes nothing; on the old
// code it followed the link and zeroed the other file.
func TestPurgeRefusesASwappableParent(t *testing.T) {
	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	run := filepath.Join(shared, "p", "run")
	victim := filepath.Join(base, "elsewhere", "run", "active.key")
	for _, d := range []string{run, filepath.Dir(victim)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	precious := bytes.Repeat([]byte("precious"), 4)
	if err := os.WriteFile(victim, precious, 0o600); err != nil {
		t.Fatal(err)
	}
	swapForLink(t, filepath.Join(shared, "p"), filepath.Join(base, "elsewhere"))
	kr := &keyring.Keyring{Unlocks: []keyring.UnlockRecord{{Dir: run, Files: []string{filepath.Join(run, "active.key")}}}}
	_, err := keyring.PurgeUnlocked(kr, time.Now())
	if err == nil || !strings.Contains(err.Error(), "directory "+shared+" above it has mode 0777") {
		t.Fatalf("purge under a 0777 parent: %v", err)
	}
	if b, _ := os.ReadFile(victim); !bytes.Equal(b, precious) {
		t.Fatalf("a file reached through the swapped parent was purged: %q", b)
	}
}

// TestPurgeRacesSwaps: while revoke purges a recorded directory, another
// process keeps swapping unlock's file for a FIFO (which would block an
// open for writing) and for a link to a file of the user's. The purge never
// hangs, never follows the link, and leaves the other file as it was.
func TestPurgeRacesSwaps(t *testing.T) {
	base := t.TempDir()
	run := filepath.Join(base, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	precious := bytes.Repeat([]byte("precious"), 4)
	if err := os.WriteFile(victim, precious, 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(run, "active.key")
	rounds := 300
	var refused, purged int
	for i := range rounds {
		if err := os.WriteFile(key, make([]byte, 32), 0o600); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		var stop atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !stop.Load() {
				tmp := key + ".swap"
				if i%2 == 0 {
					syscall.Mkfifo(tmp, 0o600)
				} else {
					os.Symlink(victim, tmp)
				}
				os.Rename(tmp, key) // the swap: one rename, as an attacker would
				os.Remove(key)
				os.WriteFile(key, make([]byte, 32), 0o600)
			}
		}()
		kr := &keyring.Keyring{Unlocks: []keyring.UnlockRecord{{Dir: run, Files: []string{key}}}}
		result := make(chan error, 1)
		go func() {
			_, err := keyring.PurgeUnlocked(kr, time.Now())
			result <- err
		}()
		select {
		case err := <-result:
			if err != nil {
				refused++
			} else {
				purged++
			}
		case <-time.After(10 * time.Second):
			stop.Store(true)
			t.Fatalf("round %d: the purge hangs on a swapped-in %s", i, map[bool]string{true: "FIFO", false: "link"}[i%2 == 0])
		}
		stop.Store(true)
		<-done
		os.Remove(key)
		os.Remove(key + ".swap")
	}
	if b, _ := os.ReadFile(victim); !bytes.Equal(b, precious) {
		t.Fatalf("the purge followed a swapped-in link: %s holds %q", victim, b)
	}
	t.Logf("%d rounds: %d purged, %d refused a swapped file", rounds, purged, refused)
}
