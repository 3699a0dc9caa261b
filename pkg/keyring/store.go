package keyring

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Store is one keyring directory.
type Store struct {
	Dir string
	FS  safefile.FS // nil: the real filesystem
	// LockWait is how long a writer waits for another (default 30s).
	LockWait time.Duration
	// Trust, when set, vets a keyring's recorded CMEK keys before it is
	// used (nil: none); its error is Load's. The commands set it from the
	// operator's cluster config (docs/threat-model.md, rule 19).
	Trust func(dir string, k *Keyring) error

	dir      safefile.DirFS // set by Open: the directory, opened once and checked
	borrowed bool           // Open of an opened Store: Close leaves dir to its opener
}

func (s Store) fs() safefile.FS {
	if s.FS == nil {
		return safefile.OS{}
	}
	return s.FS
}

// Path is the keyring file's path.
func (s Store) Path() string { return filepath.Join(s.Dir, FileName) }

// Open opens the keyring directory once (O_DIRECTORY|O_NOFOLLOW) and checks
// it and the directories above it on the descriptor (safefile.OpenDir): the
// Store it returns reaches every file of the keyring (keyring.json, its
// lock, the journal, temporary files) relative to that descriptor, so a
// directory above it swapped afterwards changes nothing. Close it when
// done. A Store not opened opens its directory for each call; Open of an
// opened Store shares its directory (and its Close leaves it open).
func (s Store) Open() (Store, error) {
	if s.dir != nil {
		s.borrowed = true
		return s, nil
	}
	d, err := safefile.Open(s.fs(), s.Dir, safefile.Private)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s, fmt.Errorf("%s: %w: run cmekctl enable first, or check --keyring", s.Dir, ErrNotFound)
		}
		return s, fmt.Errorf("%w: %v", ErrPermissions, err)
	}
	s.dir = d
	return s, nil
}

// Close closes the directory Open opened.
func (s Store) Close() error {
	if s.dir == nil || s.borrowed {
		return nil
	}
	return s.dir.Close()
}

// with runs f on the opened directory, opening it for the call if s was
// not opened.
func (s Store) with(f func(d safefile.DirFS) error) error {
	if s.dir != nil {
		return f(s.dir)
	}
	o, err := s.Open()
	if err != nil {
		return err
	}
	defer o.Close()
	return f(o.dir)
}

// Exists reports whether a keyring file is present (even an unreadable one).
func (s Store) Exists() bool {
	var err error
	if s.dir != nil {
		_, err = s.dir.Lstat(s.Path())
	} else {
		_, err = s.fs().Lstat(s.Path())
	}
	return err == nil
}

// Load reads, checks and parses the keyring. It refuses a keyring whose
// directory or file others can access, a symlink, another user's file, or
// one in a directory above it that others can change.
func (s Store) Load() (*Keyring, error) {
	if _, err := s.fs().Lstat(s.Path()); errors.Is(err, fs.ErrNotExist) && s.dir == nil {
		return nil, fmt.Errorf("%s: %w: run cmekctl enable first, or check --keyring", s.Dir, ErrNotFound)
	}
	var k *Keyring
	err := s.with(func(d safefile.DirFS) error {
		if _, err := d.Lstat(s.Path()); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w: run cmekctl enable first, or check --keyring", s.Dir, ErrNotFound)
		}
		if err := safefile.CheckPrivate(d, s.Path(), false); err != nil {
			return fmt.Errorf("%w: %v", ErrPermissions, err)
		}
		data, err := d.ReadFile(s.Path())
		if err != nil {
			return fmt.Errorf("read keyring %s: %w", s.Path(), err)
		}
		if k, err = Parse(data); err != nil {
			return fmt.Errorf("%s: %w (the file was left as it is; restore it from a copy)", s.Path(), err)
		}
		return nil
	})
	if err == nil && s.Trust != nil {
		err = s.Trust(s.Dir, k)
	}
	if err != nil {
		return nil, err
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
	return s.with(func(d safefile.DirFS) error {
		removeStaleTemps(d)
		if err := safefile.WriteFile(d, s.Path(), data, 0o600); err != nil {
			return fmt.Errorf("write keyring %s: %w", s.Dir, err)
		}
		return nil
	})
}

// Prepare creates the keyring directory (0700) if needed, opens it and
// checks it (see Open).
func (s Store) Prepare() (Store, error) {
	if err := s.fs().MkdirAll(s.Dir, 0o700); err != nil {
		return s, fmt.Errorf("create keyring directory: %w", err)
	}
	return s.Open()
}

// prepareLocked is Prepare, then Lock: the store ready to write, under its
// writer lock. What undoes each step (closing the directory, releasing the
// lock) is added to undo as soon as the step is done, for the caller to run
// however far it got.
func (s Store) prepareLocked(ctx context.Context, undo *[]func()) (Store, error) {
	st, err := s.Prepare()
	if err != nil {
		return s, fmt.Errorf("%s: %w", s.Dir, err)
	}
	*undo = append(*undo, func() { st.Close() })
	l, err := st.Lock(ctx)
	if err != nil {
		return st, err
	}
	*undo = append(*undo, func() { l.Release() })
	return st, nil
}

// Lock takes the keyring's writer lock, as the context's LockPolicy says
// (default: wait up to 30 s); s.LockWait, if set, overrides its wait. A lock
// still held is ErrLocked, naming the holder (pid, verb, since).
func (s Store) Lock(ctx context.Context) (*safefile.Lock, error) {
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
	// The directory first (Open): a lock file is created in it, so one that
	// others can write (or a symlink) is refused before anything is opened
	// there.
	var l *safefile.Lock
	err := s.with(func(d safefile.DirFS) (err error) {
		l, err = d.Lock(ctx, filepath.Join(s.Dir, LockName), o)
		return err
	})
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
func removeStaleTemps(d safefile.DirFS) {
	names, _ := d.ReadDir()
	for _, n := range names {
		for _, base := range []string{FileName, JournalName} {
			if strings.HasPrefix(n, "."+base+".tmp-") {
				_ = d.Remove(filepath.Join(d.Path(), n))
			}
		}
	}
}
