package provider

import (
	"context"
	"math/rand/v2"
	"time"
)

// RetryPolicy bounds retries of TRANSIENT errors in attempts and total time.
// Adapters whose SDK has a retryer of its own (AWS, GCP) use that instead.
type RetryPolicy struct {
	Attempts int           // total attempts, including the first
	Base     time.Duration // first backoff
	Max      time.Duration // cap on one backoff
	Budget   time.Duration // cap on the whole call, backoff included
}

// DefaultRetry is the policy cmekctl uses unless a test or flag says otherwise.
var DefaultRetry = RetryPolicy{Attempts: 5, Base: 100 * time.Millisecond, Max: 2 * time.Second, Budget: 20 * time.Second}

// Retry calls fn until it succeeds, fails with a non-TRANSIENT error, or the
// policy's attempts or budget run out. Backoff is capped and fully jittered.
// It returns the last error and the number of attempts made.
func Retry(ctx context.Context, p RetryPolicy, fn func(context.Context) error) (int, error) {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	if p.Budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Budget)
		defer cancel()
	}
	backoff := p.Base
	var err error
	for attempt := 1; ; attempt++ {
		Attempt(ctx, p.Attempts)
		err = fn(ctx)
		if err == nil || Classify(err) != Transient || attempt >= p.Attempts {
			return attempt, err
		}
		sleep := time.Duration(0)
		if backoff > 0 {
			sleep = time.Duration(rand.Int64N(int64(backoff)) + 1)
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		case <-t.C:
		}
		backoff *= 2
		if p.Max > 0 && backoff > p.Max {
			backoff = p.Max
		}
	}
}
