package provider

import (
	"context"
	"sync/atomic"
)

// Counts are KMS calls made through a Counting key.
type Counts struct {
	Wrap, Unwrap, Rewrap, Describe int64
}

// Counting wraps a Key and counts its KMS calls. cmekctl uses it to report
// the calls a command made, and tests use it to assert them.
type Counting struct {
	Key
	wrap, unwrap, rewrap, describe atomic.Int64
}

var _ Key = (*Counting)(nil)

// NewCounting returns k wrapped in a counter.
func NewCounting(k Key) *Counting { return &Counting{Key: k} }

func (c *Counting) Wrap(ctx context.Context, p, aad []byte) (Wrapped, error) {
	c.wrap.Add(1)
	return c.Key.Wrap(ctx, p, aad)
}

func (c *Counting) Unwrap(ctx context.Context, w Wrapped, aad []byte) ([]byte, error) {
	c.unwrap.Add(1)
	return c.Key.Unwrap(ctx, w, aad)
}

func (c *Counting) Describe(ctx context.Context) (KeyState, error) {
	c.describe.Add(1)
	return c.Key.Describe(ctx)
}

// Inner returns the wrapped key.
func (c *Counting) Inner() Key { return c.Key }

// Rewrap forwards to the inner key's Rewrap. Use AsRewrapper to ask whether
// the inner key has one.
func (c *Counting) Rewrap(ctx context.Context, w Wrapped, aad []byte) (Wrapped, error) {
	r, ok := c.Key.(Rewrapper)
	if !ok {
		return Wrapped{}, Errorf("cmekctl", "rewrap", Misuse, "", "%s cannot rewrap in one call", c.Key.URI())
	}
	c.rewrap.Add(1)
	return r.Rewrap(ctx, w, aad)
}

// Counts returns the calls made so far.
func (c *Counting) Counts() Counts {
	return Counts{Wrap: c.wrap.Load(), Unwrap: c.unwrap.Load(), Rewrap: c.rewrap.Load(), Describe: c.describe.Load()}
}

// inner is implemented by wrappers (Counting, audit) around a Key.
type inner interface{ Inner() Key }

// Base returns the innermost key under any wrappers.
func Base(k Key) Key {
	for {
		w, ok := k.(inner)
		if !ok {
			return k
		}
		k = w.Inner()
	}
}

// AsRewrapper returns k as a Rewrapper when the key under any wrappers can
// rewrap in one call; the returned value keeps k's wrappers (and counts).
func AsRewrapper(k Key) (Rewrapper, bool) {
	if _, ok := Base(k).(Rewrapper); !ok {
		return nil, false
	}
	r, ok := k.(Rewrapper)
	return r, ok
}

// AsAdmin returns the Admin of the key under any wrappers.
func AsAdmin(k Key) (Admin, bool) {
	a, ok := Base(k).(Admin)
	return a, ok
}
