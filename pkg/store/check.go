package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// CheckResult is one step of Check.
type CheckResult struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// CheckRacers is how many writers race in Check.
const CheckRacers = 8

// Check proves, before first use, that s enforces create-only and
// replace-if-unchanged and reads its own writes: some "S3-compatible"
// servers accept the conditional headers and ignore them. It writes under
// _check/TIME-RANDOM/ (the interface has no delete; the probes are a few
// bytes each). The error wraps ErrNotEnforced when a condition was ignored.
func Check(ctx context.Context, s Store) ([]CheckResult, error) {
	var res []CheckResult
	var b [6]byte
	_, _ = rand.Read(b[:])
	base := "_check/" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
	fail := func(step, detail string) ([]CheckResult, error) {
		res = append(res, CheckResult{Step: step, Detail: detail})
		return res, fmt.Errorf("%s: %w: %s: %s", s, ErrNotEnforced, step, detail)
	}
	broke := func(step string, err error) ([]CheckResult, error) {
		res = append(res, CheckResult{Step: step, Detail: err.Error()})
		return res, err
	}
	pass := func(step, detail string) { res = append(res, CheckResult{Step: step, OK: true, Detail: detail}) }

	key := base + "/doc"
	v1, err := s.CreateOnly(ctx, key, []byte("one"))
	if err != nil {
		return broke("create", err)
	}
	pass("create", "a new document was written")

	body, got, err := s.Get(ctx, key)
	if err != nil {
		return broke("read-your-writes", err)
	}
	if !bytes.Equal(body, []byte("one")) || got.Rev != 1 {
		return fail("read-your-writes", fmt.Sprintf("read %q at %s right after writing %q at rev 1", body, got, "one"))
	}
	pass("read-your-writes", "the write was read back at once")

	if _, err := s.CreateOnly(ctx, key, []byte("again")); !errors.Is(err, ErrExists) {
		if err == nil {
			return fail("create-only", "a second create of the same key succeeded")
		}
		return broke("create-only", err)
	}
	pass("create-only", "a second create of the same key was refused")

	v2, err := s.ReplaceIfUnchanged(ctx, key, []byte("two"), v1)
	if err != nil {
		return broke("replace", err)
	}
	pass("replace", "a replace at the version read succeeded")

	// The same bytes as revision 1, from a stale version: only the
	// condition stops it.
	if _, err := s.ReplaceIfUnchanged(ctx, key, []byte("one"), v1); !errors.Is(err, ErrConflict) {
		if err == nil {
			return fail("replace-if-unchanged", "a replace from a stale version succeeded")
		}
		return broke("replace-if-unchanged", err)
	}
	pass("replace-if-unchanged", "a replace from a stale version was refused")

	if n, err := race(ctx, func(i int) error {
		_, err := s.ReplaceIfUnchanged(ctx, key, []byte(fmt.Sprintf("racer %d", i)), v2)
		return err
	}, ErrConflict); err != nil {
		return broke("racing-replace", err)
	} else if n != 1 {
		return fail("racing-replace", fmt.Sprintf("%d of %d racing replaces from one version succeeded; want exactly 1", n, CheckRacers))
	}
	pass("racing-replace", fmt.Sprintf("1 of %d racing replaces won", CheckRacers))

	rkey := base + "/race"
	if n, err := race(ctx, func(i int) error {
		_, err := s.CreateOnly(ctx, rkey, []byte(fmt.Sprintf("racer %d", i)))
		return err
	}, ErrExists); err != nil {
		return broke("racing-create", err)
	} else if n != 1 {
		return fail("racing-create", fmt.Sprintf("%d of %d racing creates succeeded; want exactly 1", n, CheckRacers))
	}
	pass("racing-create", fmt.Sprintf("1 of %d racing creates won", CheckRacers))

	keys, err := s.List(ctx, base+"/")
	if err != nil {
		return broke("list", err)
	}
	if len(keys) != 2 || keys[0] != key || keys[1] != rkey {
		return fail("list", fmt.Sprintf("listed %v, want [%s %s]", keys, key, rkey))
	}
	pass("list", "the documents written are listed")
	return res, nil
}

// race runs CheckRacers writers at once and counts the winners; an error
// other than lost (the expected refusal) is returned.
func race(ctx context.Context, write func(i int) error, lost error) (int, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	var firstErr error
	start := make(chan struct{})
	for i := range CheckRacers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := write(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, lost):
			case firstErr == nil:
				firstErr = err
			}
		}()
	}
	close(start)
	wg.Wait()
	return won, firstErr
}
