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
