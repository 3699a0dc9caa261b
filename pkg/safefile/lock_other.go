//go:build !unix

package safefile

import (
	"context"
	"errors"
	"time"
)

// Lock is a held writer lock.
type Lock struct{}

// Acquire is not supported on this platform: cmekctl writes keyrings only on
// Unix nodes.
func Acquire(ctx context.Context, path string, wait time.Duration) (*Lock, error) {
	return nil, errors.New("keyring locking is supported on Unix only")
}

// Release drops the lock.
func (l *Lock) Release() error { return nil }

// LockOptions say how to take a lock.
type LockOptions struct {
	Wait   time.Duration
	Owner  string
	OnWait func(holder string)
}

// AcquireWith is not supported on this platform.
func AcquireWith(ctx context.Context, path string, o LockOptions) (*Lock, error) {
	return Acquire(ctx, path, o.Wait)
}

// NoFollow is the open flag that refuses a symbolic link (0 where the
// platform has none).
const NoFollow = 0
