package keyring_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// Permissions: as ssh refuses a private key others can read, a keyring that
// others can access, a symlink, or another user's keyring is refused, with a
// message that says how to fix it, and the file is left as it is.

// refuses asserts that every way in refuses the keyring in dir with
// ErrPermissions and a message containing hint, and that the keyring file is
// untouched.
func refuses(t *testing.T, env keyring.Env, dir, hint string) {
	t.Helper()
	p := filepath.Join(dir, keyring.FileName)
	data, mode, mtime := fileInfo(t, p)
	ctx := context.Background()
	s := keyring.Store{Dir: dir, LockWait: time.Second}
	_, errLoad := s.Load()
	_, errSealer := keyring.OpenSealer(ctx, env, s)
	_, errUnlock := keyring.Unlock(ctx, env, s, keyring.UnlockOptions{Out: filepath.Join(t.TempDir(), "out"), AllowDisk: true, StorePath: "*"})
	// Last: a refused LoadGroup leaves the keyring locked for the rest of
	// the process (see lockleak_test.go.bug).
	_, errGroup := keyring.LoadGroup(ctx, []keyring.Store{s}, true)
	for name, err := range map[string]error{"Load": errLoad, "LoadGroup": errGroup, "OpenSealer": errSealer, "Unlock": errUnlock} {
		if !errors.Is(err, keyring.ErrPermissions) {
			t.Errorf("%s: %v, want ErrPermissions", name, err)
			continue
		}
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("%s: message %q does not say how to fix it (%q)", name, err, hint)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: message is not one line: %q", name, err)
		}
	}
	d2, m2, t2 := fileInfo(t, p)
	if string(d2) != string(data) || m2 != mode || !t2.Equal(mtime) {
		t.Errorf("the refused keyring was changed")
	}
}

func TestPermissions(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "cluster-perm", 1, 1)
	// Each case works on its own copy of the keyring.
	var dir, p string
	fresh := func() {
		dir = c.rebase(copyBase(t, c))[0]
		p = filepath.Join(dir, keyring.FileName)
	}
	fresh()
	env := k.env()
	if _, err := (keyring.Store{Dir: dir}).Load(); err != nil {
		t.Fatalf("keyring of mode 0600 in a 0700 directory refused: %v", err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("enable wrote mode %04o, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("enable made a directory of mode %04o, want 0700", fi.Mode().Perm())
	}
	for _, m := range []os.FileMode{0o640, 0o644, 0o660, 0o604, 0o606, 0o700} {
		t.Run(fmt.Sprintf("file %04o", m), func(t *testing.T) {
			fresh()
			os.Chmod(p, m)
			defer os.Chmod(p, 0o600)
			if m == 0o700 { // owner-only: accepted
				if _, err := (keyring.Store{Dir: dir}).Load(); err != nil {
					t.Fatalf("owner-only mode refused: %v", err)
				}
				return
			}
			refuses(t, env, dir, "chmod 0600 "+p)
		})
	}
	for _, m := range []os.FileMode{0o750, 0o755, 0o770, 0o777, 0o701, 0o710} {
		t.Run(fmt.Sprintf("dir %04o", m), func(t *testing.T) {
			fresh()
			os.Chmod(dir, m)
			defer os.Chmod(dir, 0o700)
			refuses(t, env, dir, "chmod 0700 "+dir)
		})
	}
	t.Run("symlinked file", func(t *testing.T) {
		fresh()
		elsewhere := filepath.Join(t.TempDir(), "real.json")
		os.Rename(p, elsewhere)
		os.Symlink(elsewhere, p)
		defer func() { os.Remove(p); os.Rename(elsewhere, p) }()
		refuses(t, env, dir, "real path")
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatal("the symlink was replaced")
		}
	})
	t.Run("symlinked directory", func(t *testing.T) {
		fresh()
		link := filepath.Join(t.TempDir(), "link")
		os.Symlink(dir, link)
		refuses(t, env, link, "real path")
	})
	if os.Geteuid() == 0 { // chown needs root; the check itself runs for everyone
		t.Run("file owned by another user", func(t *testing.T) {
			fresh()
			os.Lchown(p, 4242, 4242)
			defer os.Lchown(p, 0, 0)
			refuses(t, env, dir, "run cmekctl as its owner")
		})
		t.Run("directory owned by another user", func(t *testing.T) {
			fresh()
			os.Lchown(dir, 4242, 4242)
			defer os.Lchown(dir, 0, 0)
			refuses(t, env, dir, "run cmekctl as its owner")
		})
	}
	// Enable refuses a directory that others can access, and writes nothing.
	t.Run("enable into a 0755 directory", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "open")
		os.Mkdir(d, 0o755)
		os.Chmod(d, 0o755)
		uri := k.create(t, "perm-enable")
		_, err := keyring.Enable(context.Background(), env, keyring.EnableRequest{Cluster: "c", Region: "r", CMEK: uri,
			Nodes: []keyring.EnableNode{{Store: keyring.Store{Dir: d}, Name: "n"}}})
		if !errors.Is(err, keyring.ErrPermissions) || !strings.Contains(err.Error(), "chmod 0700") {
			t.Fatalf("enable into 0755: %v", err)
		}
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("enable wrote %d files into a refused directory", len(ents))
		}
		if c := k.counts(uri); c.Wrap != 0 {
			t.Fatalf("enable called the KMS (%+v) before refusing", c)
		}
	})
}
