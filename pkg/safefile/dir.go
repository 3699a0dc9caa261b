package safefile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// DirCheck is what OpenDir demands of the directory itself. Both demand of
// every directory above it what ssh's StrictModes does: owned by root or
// by you, and writable by no one else, except a sticky directory (such as
// /tmp) whose entry on the path is yours or root's.
type DirCheck int

const (
	// Private: the directory is yours and closed to others (a keyring,
	// unlock's --out).
	Private DirCheck = iota
	// Purge: any owner and mode, and in a sticky directory above it an
	// entry of any owner (revoke's purge, which only zeroes and removes the
	// regular files unlock names there, never through a link, and may run
	// as root over another user's directory).
	Purge
)

// DirFS is a directory opened once and checked: the FS of the files
// directly in it. Every name given to it must be a path directly inside the
// directory (as filepath.Join(dir, base) makes); the real one (OpenDir)
// reaches them through its descriptor, never through the path again.
type DirFS interface {
	FS
	// Lock takes the writer lock file name in the directory (see
	// AcquireWith).
	Lock(ctx context.Context, name string, o LockOptions) (*Lock, error)
	// ReadDir lists the names of the directory's entries.
	ReadDir() ([]string, error)
	// Path is the directory's path.
	Path() string
	Close() error
}

// Open opens the directory path of fsys once and checks it as check says:
// OpenDir on the real filesystem (OS); another FS (a test's faultfs, a
// wrapper that counts writes) is checked the same way on the real
// directory and then used by path, so that its calls still go through it.
func Open(fsys FS, path string, check DirCheck) (DirFS, error) {
	d, err := OpenDir(path, check)
	if err != nil {
		return nil, err
	}
	if _, real := fsys.(OS); real {
		return d, nil
	}
	d.Close()
	return pathDir{fsys, filepath.Clean(path)}, nil
}

// pathDir is a checked directory of an injected FS, used by path.
type pathDir struct {
	FS
	path string
}

func (p pathDir) Lock(ctx context.Context, name string, o LockOptions) (*Lock, error) {
	if filepath.Dir(filepath.Clean(name)) != p.path {
		return nil, fmt.Errorf("%s is not directly in %s", name, p.path)
	}
	return AcquireWith(ctx, name, o)
}
func (pathDir) Close() error   { return nil }
func (p pathDir) Path() string { return p.path }
func (p pathDir) ReadDir() ([]string, error) {
	f, err := os.Open(p.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
