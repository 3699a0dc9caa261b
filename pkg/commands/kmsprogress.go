package commands

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// KMS progress: on a terminal, a KMS call that is slow (past kmsSlow) or
// retried says so on stderr, one line each time:
//
//	unwrapping store key of us-east1 via aws-kms (attempt 2/5)
//
// Nothing is written when stderr is not a terminal, or with -o json, yaml or
// prometheus (the root command decides: Factory.kmsProgress).

// kmsSlow is how long a KMS call runs before its first progress line
// (a variable for tests).
var kmsSlow = time.Second

// kmsProgress writes the progress lines of a command's KMS calls.
type kmsProgress struct {
	mu   sync.Mutex
	w    io.Writer
	slow time.Duration
	// lines counts the lines written, so that progress bars drawn before
	// one start again below it (progress.go).
	lines atomic.Int64
}

func (p *kmsProgress) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, s)
	p.lines.Add(1)
}

// written is how many lines p wrote (0 for nil).
func (p *kmsProgress) written() int64 {
	if p == nil {
		return 0
	}
	return p.lines.Load()
}

// progressKey reports its calls' progress; it changes nothing else.
type progressKey struct {
	provider.Key
	p *kmsProgress
}

var _ provider.Key = (*progressKey)(nil)

// Inner returns the wrapped key (provider.Base, AsRewrapper).
func (k *progressKey) Inner() provider.Key { return k.Key }

// track runs one KMS call, writing a line when it is slow and at each retry.
func (k *progressKey) track(ctx context.Context, verb string, call func(context.Context) error) error {
	what := provider.Purpose(ctx)
	if what == "" {
		what = "the CMEK key"
	}
	scheme, _, _ := strings.Cut(k.URI(), "://")
	label := fmt.Sprintf("%s %s via %s", verb, what, scheme)
	var mu sync.Mutex
	attempt, max := 0, 0
	status := func() string {
		mu.Lock()
		defer mu.Unlock()
		if max > 1 && attempt > 0 {
			return fmt.Sprintf("%s (attempt %d/%d)", label, attempt, max)
		}
		return label + " ..."
	}
	ctx = provider.WithAttempts(ctx, func(m int) {
		mu.Lock()
		attempt, max = attempt+1, m
		retry := attempt > 1
		mu.Unlock()
		if retry {
			k.p.line(status())
		}
	})
	slow := time.AfterFunc(k.p.slow, func() { k.p.line(status()) })
	defer slow.Stop()
	return call(ctx)
}

func (k *progressKey) Wrap(ctx context.Context, p, aad []byte) (w provider.Wrapped, err error) {
	err = k.track(ctx, "wrapping", func(ctx context.Context) error {
		w, err = k.Key.Wrap(ctx, p, aad)
		return err
	})
	return w, err
}

func (k *progressKey) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) (p []byte, err error) {
	err = k.track(ctx, "unwrapping", func(ctx context.Context) error {
		p, err = k.Key.Unwrap(ctx, w, aad)
		return err
	})
	return p, err
}

func (k *progressKey) Describe(ctx context.Context) (st provider.KeyState, err error) {
	err = k.track(ctx, "describing", func(ctx context.Context) error {
		st, err = k.Key.Describe(ctx)
		return err
	})
	return st, err
}

// Rewrap forwards to the inner key's Rewrap (see provider.AsRewrapper).
func (k *progressKey) Rewrap(ctx context.Context, w provider.Wrapped, aad []byte) (out provider.Wrapped, err error) {
	r, ok := provider.AsRewrapper(k.Key)
	if !ok {
		return provider.Wrapped{}, provider.Errorf("cmekctl", "rewrap", provider.Misuse, "", "%s cannot rewrap in one call", k.URI())
	}
	err = k.track(ctx, "rewrapping", func(ctx context.Context) error {
		out, err = r.Rewrap(ctx, w, aad)
		return err
	})
	return out, err
}
