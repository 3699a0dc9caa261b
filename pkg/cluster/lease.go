package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cmekctl/cmekctl/pkg/store"
)

// LeaseOptions tune the operator lease.
type LeaseOptions struct {
	// TTL: a holder renews every TTL/3; a lease whose version stayed the
	// same for a whole TTL on the waiter's own clock is taken over.
	TTL time.Duration
	// Wait: how long to wait for a busy lease before ErrBusy (0: once,
	// which still takes over a lease already seen stale).
	Wait time.Duration
	// Holder names this operator in the lease ("user@host pid N").
	Holder string
	Now    func() time.Time
	// Sleep is the poll interval (default TTL/10, at most 1s).
	Poll time.Duration
}

// DefaultLeaseTTL is the lease TTL unless told otherwise.
const DefaultLeaseTTL = 30 * time.Second

// Held is a lease this process holds; Release it when done.
type Held struct {
	s     store.Store
	key   string
	mu    sync.Mutex
	lease Lease
	ver   store.Version
	stop  chan struct{}
	done  chan struct{}
	err   error
	now   func() time.Time
	once  sync.Once
	// native: an etcd lease (release revokes it; lost closes when it ends).
	native func(context.Context) error
	lost   <-chan struct{}
}

// BusyError says who holds the lease.
type BusyError struct {
	Holder, Op, Token string
	Acquired          time.Time
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v: %s, running %s since %s (token %s)", ErrBusy, e.Holder, e.Op, e.Acquired.Format(time.RFC3339), e.Token)
}
func (e *BusyError) Unwrap() error { return ErrBusy }

// AcquireLease takes cluster c's lease for op. A lease held by another is
// waited for up to o.Wait; one whose version has not changed for a whole
// TTL, as measured here (never by comparing clocks across hosts), is taken
// over with a compare-and-swap, so two waiters cannot both take it.
func AcquireLease(ctx context.Context, s store.Store, c, op string, o LeaseOptions) (*Held, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultLeaseTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	poll := o.Poll
	if poll <= 0 {
		poll = min(o.TTL/10, time.Second)
	}
	var tok [12]byte
	_, _ = rand.Read(tok[:])
	now := o.Now().UTC()
	mine := Lease{Format: FormatLease, Token: hex.EncodeToString(tok[:]), Holder: o.Holder, Op: op, Acquired: now, Renewed: now, TTL: Duration(o.TTL)}
	key := leaseKey(c)
	if l, ok := s.(store.Leaser); ok {
		return acquireNative(ctx, s, l, key, mine, o, poll)
	}
	start := time.Now() // monotonic
	var seen store.Version
	var seenAt time.Time
	for {
		var cur Lease
		ver, err := getJSON(ctx, s, key, FormatLease, &cur)
		var nv store.Version
		switch {
		case errors.Is(err, store.ErrNotFound):
			nv, err = s.CreateOnly(ctx, key, marshal(mine))
		case err != nil:
			return nil, err
		case cur.Released:
			nv, err = s.ReplaceIfUnchanged(ctx, key, marshal(mine), ver)
		default:
			if ver != seen {
				seen, seenAt = ver, time.Now()
			}
			if time.Since(seenAt) >= time.Duration(cur.TTL) {
				// Unchanged for a whole TTL here: the holder is gone.
				nv, err = s.ReplaceIfUnchanged(ctx, key, marshal(mine), ver)
				break
			}
			if time.Since(start) >= o.Wait {
				return nil, &BusyError{Holder: cur.Holder, Op: cur.Op, Token: cur.Token, Acquired: cur.Acquired}
			}
			err = errBusyRetry
		}
		if err == nil {
			h := &Held{s: s, key: key, lease: mine, ver: nv, stop: make(chan struct{}), done: make(chan struct{}), now: o.Now}
			go h.renew(ctx, o.TTL/3)
			return h, nil
		}
		if !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrConflict) && err != errBusyRetry {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

var errBusyRetry = errors.New("busy")

// renew rewrites the lease every interval until Release.
func (h *Held) renew(ctx context.Context, every time.Duration) {
	defer close(h.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		l := h.lease
		l.Renewed = h.now().UTC()
		v, err := h.s.ReplaceIfUnchanged(ctx, h.key, marshal(l), h.ver)
		if err == nil {
			h.lease, h.ver = l, v
		} else if errors.Is(err, store.ErrConflict) {
			h.err = fmt.Errorf("the cluster's lease was taken over (forced, or this process stalled for a whole TTL): %w", err)
		}
		h.mu.Unlock()
	}
}

// Lost returns an error if the lease was taken from this holder.
func (h *Held) Lost() error {
	if h.native != nil {
		select {
		case <-h.lost:
			return errors.New("the cluster's lease ended before the work did (forced, or the store lost this holder's keep-alives)")
		default:
			return nil
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Token is the lease's token, for store unlock --force.
func (h *Held) Token() string { return h.lease.Token }

// StopRenewing stops the renewals without releasing: what a holder that
// dies leaves behind (tests).
func (h *Held) StopRenewing() {
	if h.native != nil {
		return
	}
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// Release stops renewing and marks the lease released.
func (h *Held) Release(ctx context.Context) error {
	if h.native != nil {
		return h.native(ctx)
	}
	h.StopRenewing()
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.lease
	l.Released = true
	_, err := h.s.ReplaceIfUnchanged(ctx, h.key, marshal(l), h.ver)
	return err
}

// ForceRelease releases cluster c's lease if its token is token, as
// Terraform's force-unlock: for a holder known to be dead that the TTL has
// not yet let go.
func ForceRelease(ctx context.Context, s store.Store, c, token string) (*Lease, error) {
	var cur Lease
	ver, err := getJSON(ctx, s, leaseKey(c), FormatLease, &cur)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("cluster %s has no lease to release", c)
	}
	if err != nil {
		return nil, err
	}
	if cur.Released {
		return &cur, fmt.Errorf("the lease of cluster %s is already released", c)
	}
	if cur.Token != token {
		return &cur, fmt.Errorf("the lease of cluster %s has token %s, not %s (held by %s for %s): nothing was changed", c, cur.Token, token, cur.Holder, cur.Op)
	}
	if l, ok := s.(store.Leaser); ok {
		return &cur, l.LeaseRevoke(ctx, leaseKey(c))
	}
	cur.Released = true
	if _, err := s.ReplaceIfUnchanged(ctx, leaseKey(c), marshal(cur), ver); err != nil {
		return &cur, err
	}
	return &cur, nil
}

// acquireNative takes the lease as a key bound to a native store lease
// (etcd): it exists only while its holder keeps the lease alive, and the
// server ends it a TTL after the holder stops, so a waiter only polls.
func acquireNative(ctx context.Context, s store.Store, l store.Leaser, key string, mine Lease, o LeaseOptions, poll time.Duration) (*Held, error) {
	start := time.Now()
	for {
		release, lost, err := l.LeaseCreate(ctx, key, marshal(mine), o.TTL)
		if err == nil {
			return &Held{s: s, key: key, lease: mine, now: o.Now, native: release, lost: lost}, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return nil, err
		}
		var cur Lease
		if _, gerr := getJSON(ctx, s, key, FormatLease, &cur); gerr == nil && time.Since(start) >= o.Wait {
			return nil, &BusyError{Holder: cur.Holder, Op: cur.Op, Token: cur.Token, Acquired: cur.Acquired}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}
