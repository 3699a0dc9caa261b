package provider

import "context"

// A KMS call's context may carry an observer of its attempts and a purpose
// (what the call is for), so that a command can tell a person at a
// terminal what a slow call is doing ("unwrapping store key of us-east1 via
// aws-kms (attempt 2/5)"). Neither changes what the call does.

type attemptsKey struct{}

type purposeKey struct{}

// WithAttempts returns ctx whose KMS calls call fn as each attempt begins,
// with the most attempts the call will make. fn must not block.
func WithAttempts(ctx context.Context, fn func(max int)) context.Context {
	return context.WithValue(ctx, attemptsKey{}, fn)
}

// Attempt tells ctx's observer (WithAttempts), if any, that an attempt of
// at most max begins. Retry calls it; adapters whose SDK retries call it
// from their retryer.
func Attempt(ctx context.Context, max int) {
	if fn, ok := ctx.Value(attemptsKey{}).(func(int)); ok {
		fn(max)
	}
}

// WithPurpose returns ctx whose KMS calls are for what ("store key of
// us-east1").
func WithPurpose(ctx context.Context, what string) context.Context {
	return context.WithValue(ctx, purposeKey{}, what)
}

// Purpose is what ctx's KMS calls are for, or "".
func Purpose(ctx context.Context) string {
	s, _ := ctx.Value(purposeKey{}).(string)
	return s
}
