//go:build unix

package safefile

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Lock is a held writer lock.
type Lock struct{ f *os.File }

// Acquire takes an exclusive lock on path (created 0600 if absent), waiting
// up to wait (0: try once). The lock is an flock(2) on a separate lock file,
// so a lock left by a killed process is released by the kernel and never
// blocks forever.
func Acquire(ctx context.Context, path string, wait time.Duration) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(wait)
	for delay := 5 * time.Millisecond; ; {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d\n", os.Getpid())), 0)
			return &Lock{f: f}, nil
		}
		if err != syscall.EWOULDBLOCK || !time.Now().Before(deadline) {
			f.Close()
			if err == syscall.EWOULDBLOCK {
				return nil, fmt.Errorf("%s: %w (waited %s; retry, or raise --lock-wait)", path, ErrLocked, wait)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
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
