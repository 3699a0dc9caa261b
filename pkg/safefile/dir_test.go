//go:build unix

package safefile_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

func mkdirs(t *testing.T, mode os.FileMode, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
}

// TestOpenDirStrictModes: the directories above a keyring or --out get ssh
// StrictModes' checks, each refusal one line naming the directory and what
// to do; real layouts (t.TempDir under the sticky /tmp, a symbolic link
// above the directory) pass.
func TestOpenDirStrictModes(t *testing.T) {
	base := t.TempDir() // under /tmp: sticky, and base is ours
	ok := filepath.Join(base, "ok")
	mkdirs(t, 0o700, ok)
	if d, err := safefile.OpenDir(ok, safefile.Private); err != nil {
		t.Fatalf("a private directory under t.TempDir: %v", err)
	} else {
		d.Close()
	}

	// A parent others can write (not sticky): anyone could swap ok for a link.
	open := filepath.Join(base, "open")
	mkdirs(t, 0o777, open)
	mkdirs(t, 0o700, filepath.Join(open, "k"))
	_, err := safefile.OpenDir(filepath.Join(open, "k"), safefile.Private)
	if err == nil || !strings.Contains(err.Error(), "directory "+open+" above it has mode 0777, which others can write to") || !strings.Contains(err.Error(), "run chmod go-w "+open) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a 0777 parent: %v", err)
	}
	// Group-writable too (ssh refuses it).
	grp := filepath.Join(base, "grp")
	mkdirs(t, 0o770, grp)
	mkdirs(t, 0o700, filepath.Join(grp, "k"))
	if _, err := safefile.OpenDir(filepath.Join(grp, "k"), safefile.Private); err == nil || !strings.Contains(err.Error(), grp) {
		t.Fatalf("a 0770 parent: %v", err)
	}
	// Sticky and world-writable (a /tmp): fine while the entry is ours.
	sticky := filepath.Join(base, "sticky")
	mkdirs(t, 0o777|os.ModeSticky, sticky)
	mkdirs(t, 0o700, filepath.Join(sticky, "k"))
	if d, err := safefile.OpenDir(filepath.Join(sticky, "k"), safefile.Private); err != nil {
		t.Fatalf("our directory in a sticky one: %v", err)
	} else {
		d.Close()
	}

	// A symbolic link above the directory (/var/run -> /run) is followed and
	// the real path checked; the directory itself must not be one.
	link := filepath.Join(base, "link")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	d, err := safefile.OpenDir(filepath.Join(link, "ok"), safefile.Private)
	if err != nil {
		t.Fatalf("through a link above: %v", err)
	}
	if err := safefile.WriteFile(d, filepath.Join(link, "ok", "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if b, _ := os.ReadFile(filepath.Join(ok, "f")); string(b) != "x" {
		t.Fatalf("written through the link above: %q", b)
	}
	if err := os.Symlink(ok, filepath.Join(base, "final")); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.OpenDir(filepath.Join(base, "final"), safefile.Private); err == nil || !strings.Contains(err.Error(), "is a symbolic link: refusing to follow it") {
		t.Fatalf("the directory a link: %v", err)
	}
	// Through a 0777 parent's link: the link's directory is checked too.
	if err := os.Symlink(ok, filepath.Join(open, "l")); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.OpenDir(filepath.Join(open, "l", "sub"), safefile.Private); err == nil || !strings.Contains(err.Error(), open) {
		t.Fatalf("a link in a 0777 directory: %v", err)
	}
	// Missing: fs.ErrNotExist. Mode and owner of the directory itself.
	if _, err := safefile.OpenDir(filepath.Join(base, "missing"), safefile.Private); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	wide := filepath.Join(base, "wide")
	mkdirs(t, 0o755, wide)
	if _, err := safefile.OpenDir(wide, safefile.Private); err == nil || !strings.Contains(err.Error(), "run chmod 0700 "+wide) {
		t.Fatalf("a 0755 directory: %v", err)
	}
	if d, err := safefile.OpenDir(wide, safefile.Purge); err != nil {
		t.Fatalf("purge of a 0755 directory: %v", err)
	} else {
		d.Close()
	}

	if os.Geteuid() != 0 {
		return // the owner cases need chown
	}
	// A parent owned by another user, and another user's entry in a sticky
	// directory: both could be swapped by that user.
	other := filepath.Join(base, "other")
	mkdirs(t, 0o755, other)
	mkdirs(t, 0o700, filepath.Join(other, "k"))
	if err := os.Chown(other, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.OpenDir(filepath.Join(other, "k"), safefile.Private); err == nil || !strings.Contains(err.Error(), "directory "+other+" above it is owned by uid 12345, not by you or root") {
		t.Fatalf("another user's parent: %v", err)
	}
	theirs := filepath.Join(sticky, "theirs")
	mkdirs(t, 0o755, theirs)
	mkdirs(t, 0o700, filepath.Join(theirs, "k"))
	if err := os.Chown(theirs, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.OpenDir(filepath.Join(theirs, "k"), safefile.Private); err == nil || !strings.Contains(err.Error(), sticky) {
		t.Fatalf("another user's entry in a sticky directory: %v", err)
	}
}

// TestDirSurvivesParentSwap: once a directory is opened, swapping a
// directory above it for a symbolic link elsewhere changes nothing: writes,
// renames, locks and removes land in the directory that was checked.
func TestDirSurvivesParentSwap(t *testing.T) {
	base := t.TempDir()
	parent := filepath.Join(base, "p")
	dir := filepath.Join(parent, "d")
	decoy := filepath.Join(base, "decoy")
	mkdirs(t, 0o700, parent, dir, decoy, filepath.Join(decoy, "d"))
	d, err := safefile.OpenDir(dir, safefile.Private)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The swap: p moved away, a link to decoy in its place.
	if err := os.Rename(parent, parent+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(decoy, parent); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "f")
	if err := safefile.WriteFile(d, f, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := d.Lock(context.Background(), filepath.Join(dir, "lock"), safefile.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if err := d.Rename(f, filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(decoy, "d")); len(ents) != 0 {
		t.Fatalf("written through the swapped parent: %v", ents)
	}
	if b, err := os.ReadFile(filepath.Join(parent+".moved", "d", "g")); err != nil || string(b) != "key" {
		t.Fatalf("not in the directory checked: %q %v", b, err)
	}
	// Names outside the directory are refused, not resolved.
	for _, bad := range []string{filepath.Join(decoy, "d", "x"), filepath.Join(dir, "..", "x"), filepath.Join(dir, "sub", "x")} {
		if _, err := d.OpenFile(bad, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
			t.Fatalf("%s opened through the directory", bad)
		}
	}
	// A link in the directory is never followed.
	if err := os.Symlink(filepath.Join(decoy, "d", "target"), filepath.Join(parent+".moved", "d", "ln")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenFile(filepath.Join(dir, "ln"), os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		t.Fatal("a symbolic link in the directory was followed")
	}
	if _, err := os.Lstat(filepath.Join(decoy, "d", "target")); err == nil {
		t.Fatal("the link's target was created")
	}
}
