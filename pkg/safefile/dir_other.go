//go:build !unix

package safefile

import (
	"context"
	"os"
	"path/filepath"
)

// Dir is a checked directory. Without openat on this platform its files are
// reached by path (cmekctl writes keyrings and unlocks on Unix nodes only).
type Dir struct {
	OS
	path string
}

var _ DirFS = (*Dir)(nil)

// OpenDir checks the directory path (see DirCheck); the directories above
// it are not checked on this platform.
func OpenDir(path string, check DirCheck) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if check == Private {
		err = CheckPrivate(OS{}, abs, true)
	} else {
		_, err = os.Lstat(abs)
	}
	if err != nil {
		return nil, err
	}
	return &Dir{path: abs}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Close does nothing here.
func (d *Dir) Close() error { return nil }

// ReadDir lists the directory's entries.
func (d *Dir) ReadDir() ([]string, error) {
	f, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// Lock takes the lock file name in the directory.
func (d *Dir) Lock(ctx context.Context, name string, o LockOptions) (*Lock, error) {
	return AcquireWith(ctx, name, o)
}

// Links is how many names a file has (1 where the platform does not say).
func Links(fi os.FileInfo) uint64 { return 1 }

// SameFile reports whether a and b describe the same file.
func SameFile(a, b os.FileInfo) bool { return os.SameFile(a, b) }
