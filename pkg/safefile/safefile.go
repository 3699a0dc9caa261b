// Package safefile writes files crash-safely through a small filesystem
// interface, so tests can inject a fault or a crash at every write point:
// write a temporary file in the same directory, fsync it, rename it over the
// target, fsync the directory. A crash at any point leaves the old or the new
// file, readable. It also provides the lock file that serialises writers.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// File is the part of *os.File that the writer uses.
type File interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// FS is the filesystem the keyring and the embedded KMS write through.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	ReadFile(name string) ([]byte, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	Lstat(name string) (os.FileInfo, error)
	// MkdirAll creates name and any missing parents with perm, and makes
	// each directory it creates durable (fsyncs its parent), so that a file
	// made durable inside it does not vanish with it on a power cut.
	MkdirAll(name string, perm os.FileMode) error
	// SyncDir fsyncs a directory, making renames in it durable.
	SyncDir(name string) error
}

// OS is the real filesystem.
type OS struct{}

var _ FS = OS{}

func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	return os.OpenFile(name, flag, perm)
}
func (OS) ReadFile(name string) ([]byte, error)   { return os.ReadFile(name) }
func (OS) Rename(o, n string) error               { return os.Rename(o, n) }
func (OS) Remove(name string) error               { return os.Remove(name) }
func (OS) Lstat(name string) (os.FileInfo, error) { return os.Lstat(name) }

// MissingDirs is name (cleaned) and those of its parents that do not exist
// (Lstat fails), from name up: what MkdirAll has to create, deepest first.
func MissingDirs(name string) []string {
	var missing []string
	for p := filepath.Clean(name); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	return missing
}

// MkdirAll creates the missing directories of name, each followed by an
// fsync of its parent.
func (o OS) MkdirAll(name string, perm os.FileMode) error {
	name = filepath.Clean(name)
	missing := MissingDirs(name)
	if len(missing) == 0 {
		return os.MkdirAll(name, perm) // reports a non-directory in the way
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := o.SyncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("fsync directory %s: %w", filepath.Dir(p), err)
		}
	}
	return nil
}
func (OS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFile replaces path with data crash-safely, with mode perm. On any
// error the temporary file is removed (best effort) and path is untouched.
// A failed fsync is never retried: the error is returned and the data is
// not trusted.
func WriteFile(fsys FS, path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = fsys.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	if err = fsys.SyncDir(dir); err != nil {
		// The rename happened; the new file is in place but may not be
		// durable. Report it: the caller must not claim success.
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// CheckPrivate refuses a file or directory that others can read or write, or
// that is a symlink, or owned by another user: as ssh refuses such keys.
// The returned error says how to fix it.
func CheckPrivate(fsys FS, path string, isDir bool) error {
	fi, err := fsys.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link: refusing to follow it; use the real path", path)
	}
	if isDir != fi.IsDir() {
		if isDir {
			return fmt.Errorf("%s is not a directory", path)
		}
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by you (uid %d): run cmekctl as its owner", path, uid, os.Geteuid())
	}
	want := os.FileMode(0o600)
	if isDir {
		want = 0o700
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o, which others can access: run chmod %04o %s", path, fi.Mode().Perm(), want, path)
	}
	return nil
}

// ErrUnsafe: a file in the place of a lock is a symbolic link, not a
// regular file, or another user's.
var ErrUnsafe = errors.New("unsafe lock file")

// ErrLocked is returned when another writer holds the lock past the wait.
var ErrLocked = errors.New("locked by another cmekctl process")

// LockedError is a lock still held by another process after the wait.
type LockedError struct {
	Path   string
	Holder string // "pid 123 (rotate data-key, since 2026-12-04T18:59:01Z)"
	Waited time.Duration
}

func (e *LockedError) Error() string {
	if e.Waited > 0 {
		return fmt.Sprintf("%s: %v: held by %s (waited %s)", e.Path, ErrLocked, e.Holder, e.Waited)
	}
	return fmt.Sprintf("%s: %v: held by %s", e.Path, ErrLocked, e.Holder)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Owner returns the uid that owns fi, where the platform has one.
func Owner(fi os.FileInfo) (uid int, ok bool) { return owner(fi) }
