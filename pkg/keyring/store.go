package keyring

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Store is one keyring directory.
type Store struct {
	Dir string
	FS  safefile.FS // nil: the real filesystem
	// LockWait is how long a writer waits for another (default 30s).
	LockWait time.Duration
}

func (s Store) fs() safefile.FS {
	if s.FS == nil {
		return safefile.OS{}
	}
	return s.FS
}

// Path is the keyring file's path.
func (s Store) Path() string { return filepath.Join(s.Dir, FileName) }

// Exists reports whether a keyring file is present (even an unreadable one).
func (s Store) Exists() bool {
	_, err := s.fs().Lstat(s.Path())
	return err == nil
}

// Load reads, checks and parses the keyring. It refuses a keyring whose
// directory or file others can access, a symlink, or another user's file.
func (s Store) Load() (*Keyring, error) {
	if _, err := s.fs().Lstat(s.Path()); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w: run cmekctl enable first, or check --keyring", s.Dir, ErrNotFound)
	}
	if err := safefile.CheckPrivate(s.fs(), s.Dir, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermissions, err)
	}
	if err := safefile.CheckPrivate(s.fs(), s.Path(), false); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermissions, err)
	}
	data, err := s.fs().ReadFile(s.Path())
	if err != nil {
		return nil, fmt.Errorf("read keyring %s: %w", s.Path(), err)
	}
	k, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the file was left as it is; restore it from a copy)", s.Path(), err)
	}
	return k, nil
}

// Save replaces the keyring crash-safely.
func (s Store) Save(k *Keyring) error {
	if err := k.validate(); err != nil {
		return fmt.Errorf("refusing to write an inconsistent keyring: %v", err)
	}
	data, err := Marshal(k)
	if err != nil {
		return err
	}
	s.removeStaleTemps()
	if err := safefile.WriteFile(s.fs(), s.Path(), data, 0o600); err != nil {
		return fmt.Errorf("write keyring %s: %w", s.Dir, err)
	}
	return nil
}

// Prepare creates the keyring directory (0700) if needed and checks it.
func (s Store) Prepare() error {
	if err := s.fs().MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create keyring directory: %w", err)
	}
	if err := safefile.CheckPrivate(s.fs(), s.Dir, true); err != nil {
		return fmt.Errorf("%w: %v", ErrPermissions, err)
	}
	return nil
}

// Lock takes the keyring's writer lock, as the context's LockPolicy says
// (default: wait up to 30 s); s.LockWait, if set, overrides its wait. A lock
// still held is ErrLocked, naming the holder (pid, verb, since).
func (s Store) Lock(ctx context.Context) (*safefile.Lock, error) {
	// The directory first: a lock file is created in it, so one that others
	// can write (or a symlink) is refused before anything is opened there.
	if err := safefile.CheckPrivate(s.fs(), s.Dir, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermissions, err)
	}
	o := safefile.LockOptions{Wait: 30 * time.Second}
	if p, ok := ctx.Value(lockPolicyKey{}).(LockPolicy); ok {
		o = safefile.LockOptions{Wait: p.Wait, Owner: p.Owner}
		if p.OnWait != nil {
			o.OnWait = func(holder string) { p.OnWait(s.Dir, holder) }
		}
	}
	if s.LockWait != 0 {
		o.Wait = s.LockWait
	}
	l, err := safefile.AcquireWith(ctx, filepath.Join(s.Dir, LockName), o)
	if errors.Is(err, safefile.ErrUnsafe) {
		return nil, fmt.Errorf("%w: %v", ErrPermissions, err)
	}
	var le *safefile.LockedError
	if errors.As(err, &le) {
		if le.Waited > 0 {
			return nil, fmt.Errorf("%w: %s is held by %s; waited %s", ErrLocked, s.Dir, le.Holder, le.Waited)
		}
		return nil, fmt.Errorf("%w: %s is held by %s", ErrLocked, s.Dir, le.Holder)
	}
	return l, err
}

// LockPolicy is how a command takes keyring locks: how long it waits for
// another writer (0: not at all), what it is doing (written into the lock
// file for whoever finds it held) and whom to tell, at once, that it waits.
type LockPolicy struct {
	Wait   time.Duration
	Owner  string
	OnWait func(dir, holder string)
}

type lockPolicyKey struct{}

// WithLockPolicy returns ctx with p, for every Store.Lock under it.
func WithLockPolicy(ctx context.Context, p LockPolicy) context.Context {
	return context.WithValue(ctx, lockPolicyKey{}, p)
}

// removeStaleTemps removes the temporary files of writers that died between
// creating and renaming them. Save runs under the keyring's lock, so no live
// writer owns one. They hold only wrapped keys: debris, not a leak.
func (s Store) removeStaleTemps() {
	for _, base := range []string{FileName, JournalName} {
		matches, _ := filepath.Glob(filepath.Join(s.Dir, "."+base+".tmp-*"))
		for _, m := range matches {
			_ = s.fs().Remove(m)
		}
	}
}
