package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Dir is the local directory backend: one file per document under a 0700
// root, each write a crash-safe replace (temporary file, fsync, rename,
// fsync of the directory) under an flock on ROOT/.store.lock, so the
// compare and the write are one step for every process on the host.
type Dir struct {
	Root string
	// LockWait is how long a writer waits for another (default 30s).
	LockWait time.Duration
}

var _ Store = (*Dir)(nil)

const dirLockName = ".store.lock"

// OpenDir opens (creating it 0700 if absent) a directory store. A root that
// others can access, a symlink, or another user's, is refused.
func OpenDir(root string) (*Dir, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("%w: directory store %q: give an absolute path", ErrURI, root)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("dir store: create %s: %w", root, err)
	}
	if err := safefile.CheckPrivate(safefile.OS{}, root, true); err != nil {
		return nil, fmt.Errorf("dir store: %v", err)
	}
	return &Dir{Root: root}, nil
}

func (d *Dir) String() string { return "file://" + d.Root }

// Close does nothing.
func (d *Dir) Close() error { return nil }

func (d *Dir) path(key string) string {
	return filepath.Join(d.Root, filepath.FromSlash(key))
}

func (d *Dir) read(key string) ([]byte, Version, error) {
	body, v, _, err := d.readIfChanged(key, Version{})
	return body, v, err
}

var _ ConditionalGetter = (*Dir)(nil)

// GetIfChanged reads the revision line only while the document is at prev;
// the rest of the file is read when the revision differs. The file read is
// one snapshot: a write replaces it by a rename, never in place.
func (d *Dir) GetIfChanged(ctx context.Context, key string, prev Version) ([]byte, Version, bool, error) {
	if err := CheckKey(key); err != nil {
		return nil, Version{}, false, err
	}
	return d.readIfChanged(key, prev)
}

func (d *Dir) readIfChanged(key string, prev Version) ([]byte, Version, bool, error) {
	f, err := os.Open(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Version{}, false, wrapErr("dir store", "get", key, ErrNotFound)
	}
	if err != nil {
		return nil, Version{}, false, wrapErr("dir store", "get", key, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64)
	line, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, Version{}, false, wrapErr("dir store", "get", key, err)
	}
	rev, _, err := decode(line)
	if err != nil {
		return nil, Version{}, false, wrapErr("dir store", "get", key, err)
	}
	cur := Version{Rev: rev, Token: strconv.FormatUint(rev, 10)}
	if prev.Token != "" && cur == prev {
		return nil, prev, false, nil
	}
	body, err := io.ReadAll(io.LimitReader(br, maxDoc+1))
	if err != nil {
		return nil, Version{}, false, wrapErr("dir store", "get", key, err)
	}
	if len(body) > maxDoc {
		return nil, Version{}, false, wrapErr("dir store", "get", key, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxDoc))
	}
	return body, cur, true, nil
}

// Get reads a document. A rename is atomic, so no lock is needed.
func (d *Dir) Get(ctx context.Context, key string) ([]byte, Version, error) {
	if err := CheckKey(key); err != nil {
		return nil, Version{}, err
	}
	return d.read(key)
}

func (d *Dir) lock(ctx context.Context) (*safefile.Lock, error) {
	wait := d.LockWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	l, err := safefile.Acquire(ctx, filepath.Join(d.Root, dirLockName), wait)
	if err != nil {
		return nil, fmt.Errorf("dir store: %w: %v", ErrUnavailable, err)
	}
	return l, nil
}

func (d *Dir) write(key string, rev uint64, body []byte) (Version, error) {
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return Version{}, wrapErr("dir store", "write", key, err)
	}
	if err := safefile.WriteFile(safefile.OS{}, p, encode(rev, body), 0o600); err != nil {
		return Version{}, wrapErr("dir store", "write", key, err)
	}
	return Version{Rev: rev, Token: strconv.FormatUint(rev, 10)}, nil
}

// CreateOnly writes a new document.
func (d *Dir) CreateOnly(ctx context.Context, key string, body []byte) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	l, err := d.lock(ctx)
	if err != nil {
		return Version{}, err
	}
	defer l.Release()
	if _, err := os.Lstat(d.path(key)); err == nil {
		return Version{}, wrapErr("dir store", "create", key, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Version{}, wrapErr("dir store", "create", key, err)
	}
	return d.write(key, 1, body)
}

// ReplaceIfUnchanged writes body if the document is still at prev.
func (d *Dir) ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev Version) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	l, err := d.lock(ctx)
	if err != nil {
		return Version{}, err
	}
	defer l.Release()
	_, cur, err := d.read(key)
	if errors.Is(err, ErrNotFound) {
		return Version{}, wrapErr("dir store", "replace", key, fmt.Errorf("%w (it is gone)", ErrConflict))
	}
	if err != nil {
		return Version{}, err
	}
	if cur.Rev != prev.Rev || cur.Token != prev.Token {
		return Version{}, wrapErr("dir store", "replace", key, fmt.Errorf("%w (%s, expected %s)", ErrConflict, cur, prev))
	}
	return d.write(key, prev.Rev+1, body)
}

// List returns the keys under prefix.
func (d *Dir) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var keys []string
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		name := e.Name()
		if strings.HasPrefix(name, ".") && p != d.Root {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil // the lock file, temporary files
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.Root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dir store: list %s: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}
