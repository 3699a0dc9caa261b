//go:build unix

package safefile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// Lock is a held writer lock.
type Lock struct{ f *os.File }

// LockOptions say how to take a lock.
type LockOptions struct {
	// Wait is how long to wait for another holder (0: try once).
	Wait time.Duration
	// Owner is what the holder is doing ("rotate data-key"), written into
	// the lock file with its pid and the time, so that a process that finds
	// the lock held can say who holds it.
	Owner string
	// OnWait, if set, is called once, at once, when the lock is held by
	// another process and Acquire starts to wait, with the holder.
	OnWait func(holder string)
}

// Acquire takes an exclusive lock on path (created 0600 if absent), waiting
// up to wait (0: try once). The lock is an flock(2) on a separate lock file,
// so a lock left by a killed process is released by the kernel and never
// blocks forever.
func Acquire(ctx context.Context, path string, wait time.Duration) (*Lock, error) {
	return AcquireWith(ctx, path, LockOptions{Wait: wait})
}

// AcquireWith is Acquire with a named owner and a report of who holds the
// lock when it must wait. A lock still held after o.Wait is a *LockedError
// naming the holder (errors.Is ErrLocked).
func AcquireWith(ctx context.Context, path string, o LockOptions) (*Lock, error) {
	return acquire(ctx, path, func(flag int) (*os.File, error) { return os.OpenFile(path, flag, 0o600) }, o)
}

// acquire takes the lock file that open opens with the flags given (by
// path, or relative to a checked directory's descriptor: Dir.Lock).
func acquire(ctx context.Context, path string, open func(flag int) (*os.File, error), o LockOptions) (*Lock, error) {
	// Never follow a symbolic link planted in place of the lock (it would
	// name any file of the user's), and never take another user's file.
	f, err := open(os.O_RDWR | os.O_CREATE | syscall.O_NOFOLLOW | syscall.O_CLOEXEC | syscall.O_NONBLOCK)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("open lock file: %s is a symbolic link: refusing to follow it; remove it: %w", path, ErrUnsafe)
		}
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open lock file: %s is not a regular file: remove it: %w", path, ErrUnsafe)
	} else if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("open lock file: %s is owned by uid %d, not by you (uid %d): remove it: %w", path, uid, os.Geteuid(), ErrUnsafe)
	}
	start := time.Now()
	deadline := start.Add(o.Wait)
	told := false
	for delay := 5 * time.Millisecond; ; {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			info := fmt.Sprintf("pid %d\n", os.Getpid())
			if o.Owner != "" {
				info += fmt.Sprintf("verb %s\nsince %s\n", oneLine(o.Owner), time.Now().UTC().Format(time.RFC3339))
			}
			// A fixed-size record, never a truncate: the file is only
			// ever this size, and a stale longer record cannot remain.
			_, _ = f.WriteAt(lockRecord(info), 0)
			return &Lock{f: f}, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			holder := lockHolder(f)
			f.Close()
			return nil, &LockedError{Path: path, Holder: holder, Waited: o.Wait}
		}
		if !told && o.OnWait != nil {
			o.OnWait(lockHolder(f))
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// lockHolder reads who holds the lock from the lock file: "pid 123 (rotate
// data-key, since 2026-12-04T18:59:01Z)", or "a process that did not say" if
// the file is empty (an older cmekctl, or a holder between taking the lock
// and writing its name).
func lockHolder(f *os.File) string {
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	var pid, verb, since string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "pid":
			pid = v
		case "verb":
			verb = v
		case "since":
			since = v
		}
	}
	if pid == "" {
		return "a process that did not say which"
	}
	s := "pid " + pid
	switch {
	case verb != "" && since != "":
		s += fmt.Sprintf(" (%s, since %s)", verb, since)
	case verb != "":
		s += " (" + verb + ")"
	}
	return s
}

// lockRecordSize is the lock file's record: the holder's lines, padded
// with newlines.
const lockRecordSize = 512

func lockRecord(info string) []byte {
	b := make([]byte, lockRecordSize)
	for i := range b {
		b[i] = '\n'
	}
	copy(b[:lockRecordSize-1], info)
	return b
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// NoFollow is the open flag that refuses a symbolic link (0 where the
// platform has none).
const NoFollow = syscall.O_NOFOLLOW
