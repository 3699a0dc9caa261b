package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cmekctl/cmekctl/internal/faultproxy"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// Racers is how many writers race in the suite.
const Racers = 8

// Run is the store contract: every backend passes it. open returns a new
// client of the same store each call (as another host would open it).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := open(t)
	t.Cleanup(func() { s.Close() })

	t.Run("get-missing", func(t *testing.T) {
		if _, _, err := s.Get(ctx, "contract/missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get of a missing key: %v, want ErrNotFound", err)
		}
	})
	t.Run("create-only", func(t *testing.T) {
		v, err := s.CreateOnly(ctx, "contract/create", []byte("first\nline"))
		if err != nil {
			t.Fatal(err)
		}
		if v.Rev != 1 || v.Token == "" {
			t.Fatalf("created at %+v, want rev 1 and a token", v)
		}
		if _, err := s.CreateOnly(ctx, "contract/create", []byte("second")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		// Another client sees the first write, untouched.
		other := open(t)
		defer other.Close()
		body, got, err := other.Get(ctx, "contract/create")
		if err != nil || string(body) != "first\nline" || got.Rev != 1 || got.Token != v.Token {
			t.Fatalf("read %q %+v %v, want %q at %+v", body, got, err, "first\nline", v)
		}
	})
	t.Run("replace-if-unchanged", func(t *testing.T) {
		v1, err := s.CreateOnly(ctx, "contract/cas", []byte("one"))
		if err != nil {
			t.Fatal(err)
		}
		v2, err := s.ReplaceIfUnchanged(ctx, "contract/cas", []byte("two"), v1)
		if err != nil {
			t.Fatal(err)
		}
		if v2.Rev != 2 || v2.Token == v1.Token {
			t.Fatalf("replaced at %+v from %+v, want rev 2 and a new token", v2, v1)
		}
		if _, err := s.ReplaceIfUnchanged(ctx, "contract/cas", []byte("stale"), v1); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("replace from a stale version: %v, want ErrConflict", err)
		}
		body, got, err := s.Get(ctx, "contract/cas")
		if err != nil || string(body) != "two" || got != v2 {
			t.Fatalf("read %q %+v %v, want two at %+v", body, got, err, v2)
		}
		if _, err := s.ReplaceIfUnchanged(ctx, "contract/absent", []byte("x"), v1); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("replace of a missing key: %v, want ErrConflict", err)
		}
		if _, err := s.ReplaceIfUnchanged(ctx, "contract/cas", []byte("x"), store.Version{}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("replace from the zero version: %v, want ErrConflict", err)
		}
	})
	t.Run("get-if-changed", func(t *testing.T) {
		v1, err := s.CreateOnly(ctx, "contract/cond", []byte("one"))
		if err != nil {
			t.Fatal(err)
		}
		body, got, changed, err := store.GetIfChanged(ctx, s, "contract/cond", v1)
		if err != nil || changed || body != nil || got != v1 {
			t.Fatalf("unchanged: %q %+v changed=%v %v, want no body at %+v", body, got, changed, err, v1)
		}
		body, got, changed, err = store.GetIfChanged(ctx, s, "contract/cond", store.Version{})
		if err != nil || !changed || string(body) != "one" || got != v1 {
			t.Fatalf("from the zero version: %q %+v changed=%v %v, want one at %+v", body, got, changed, err, v1)
		}
		// A, B, A: the third write's bytes equal the first's; it is still
		// a change.
		v2, err := s.ReplaceIfUnchanged(ctx, "contract/cond", []byte("two"), v1)
		if err != nil {
			t.Fatal(err)
		}
		v3, err := s.ReplaceIfUnchanged(ctx, "contract/cond", []byte("one"), v2)
		if err != nil {
			t.Fatal(err)
		}
		body, got, changed, err = store.GetIfChanged(ctx, s, "contract/cond", v1)
		if err != nil || !changed || string(body) != "one" || got != v3 {
			t.Fatalf("after two writes: %q %+v changed=%v %v, want one at %+v", body, got, changed, err, v3)
		}
		if _, _, _, err := store.GetIfChanged(ctx, s, "contract/cond-missing", v1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a missing key: %v, want ErrNotFound", err)
		}
	})
	t.Run("no-aba", func(t *testing.T) {
		// A, B, A again: identical bytes must not pass a compare made
		// against the first A (an S3 ETag alone would).
		v1, err := s.CreateOnly(ctx, "contract/aba", []byte("A"))
		if err != nil {
			t.Fatal(err)
		}
		v2, err := s.ReplaceIfUnchanged(ctx, "contract/aba", []byte("B"), v1)
		if err != nil {
			t.Fatal(err)
		}
		v3, err := s.ReplaceIfUnchanged(ctx, "contract/aba", []byte("A"), v2)
		if err != nil {
			t.Fatal(err)
		}
		if v3.Token == v1.Token || v3.Rev != 3 {
			t.Fatalf("A written again at %+v, first at %+v: the token repeats", v3, v1)
		}
		if _, err := s.ReplaceIfUnchanged(ctx, "contract/aba", []byte("C"), v1); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("replace from the first A's version: %v, want ErrConflict", err)
		}
	})
	t.Run("racing-writers", func(t *testing.T) {
		v, err := s.CreateOnly(ctx, "contract/race", []byte("base"))
		if err != nil {
			t.Fatal(err)
		}
		clients := make([]store.Store, Racers)
		for i := range clients {
			clients[i] = open(t)
			defer clients[i].Close()
		}
		winners := race(t, func(i int) error {
			_, err := clients[i].ReplaceIfUnchanged(ctx, "contract/race", []byte(fmt.Sprint("writer ", i)), v)
			return err
		}, store.ErrConflict)
		if len(winners) != 1 {
			t.Fatalf("%d racing replaces won (%v), want exactly 1", len(winners), winners)
		}
		body, got, err := s.Get(ctx, "contract/race")
		if err != nil || string(body) != fmt.Sprint("writer ", winners[0]) || got.Rev != 2 {
			t.Fatalf("after the race: %q %+v %v, want writer %d at rev 2", body, got, err, winners[0])
		}
		created := race(t, func(i int) error {
			_, err := clients[i].CreateOnly(ctx, "contract/race-create", []byte(fmt.Sprint("creator ", i)))
			return err
		}, store.ErrExists)
		if len(created) != 1 {
			t.Fatalf("%d racing creates won (%v), want exactly 1", len(created), created)
		}
		body, _, err = s.Get(ctx, "contract/race-create")
		if err != nil || string(body) != fmt.Sprint("creator ", created[0]) {
			t.Fatalf("after the create race: %q %v, want creator %d", body, err, created[0])
		}
	})
	t.Run("list", func(t *testing.T) {
		for _, k := range []string{"list/a/x", "list/a/y", "list/ab", "list/b/z"} {
			if _, err := s.CreateOnly(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.List(ctx, "list/a/")
		if err != nil || !slices.Equal(got, []string{"list/a/x", "list/a/y"}) {
			t.Fatalf("list list/a/: %v %v", got, err)
		}
		got, err = s.List(ctx, "list/")
		if err != nil || !slices.Equal(got, []string{"list/a/x", "list/a/y", "list/ab", "list/b/z"}) {
			t.Fatalf("list list/: %v %v", got, err)
		}
		got, err = s.List(ctx, "nothing/")
		if err != nil || len(got) != 0 {
			t.Fatalf("list of an empty prefix: %v %v, want nothing and no error", got, err)
		}
	})
	t.Run("bad-keys", func(t *testing.T) {
		for _, k := range []string{"", "/abs", "a/../b", "a//b", "a/", ".hidden", "sp ace"} {
			if _, err := s.CreateOnly(ctx, k, []byte("x")); err == nil {
				t.Errorf("create of key %q succeeded", k)
			}
		}
	})
	t.Run("store-check", func(t *testing.T) {
		res, err := store.Check(ctx, s)
		if err != nil {
			t.Fatalf("store check: %v (%+v)", err, res)
		}
	})
}

// race runs Racers writers at once and returns the indexes that won; an
// error other than lost fails the test.
func race(t *testing.T, write func(i int) error, lost error) []int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []int
	start := make(chan struct{})
	for i := range Racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := write(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, i)
			case !errors.Is(err, lost):
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return won
}

// RunLostAnswer is the contract for a write whose answer is lost: open
// opens a client through p, a proxy that forwards writes with method to
// the server. The write lands once; the client reports success, a refusal
// of its own retry (ErrExists, ErrConflict) or ErrUnavailable, never a
// second application; a read shows the write exactly once.
func RunLostAnswer(t *testing.T, open func(t *testing.T) store.Store, p *faultproxy.Proxy, method string) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	p.Set(faultproxy.Fault{DropAnswer: true, Method: method, Times: 1})
	_, err := s.CreateOnly(ctx, "lost/create", []byte("created"))
	if err != nil && !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("create whose answer was lost: %v", err)
	}
	if p.Faulted() != 1 {
		t.Fatalf("the proxy dropped %d answers, want 1", p.Faulted())
	}
	p.Set(faultproxy.Fault{})
	body, v, err := s.Get(ctx, "lost/create")
	if err != nil || string(body) != "created" || v.Rev != 1 {
		t.Fatalf("after a lost create answer: %q %+v %v, want the write at rev 1", body, v, err)
	}

	p.Set(faultproxy.Fault{DropAnswer: true, Method: method, Times: 1})
	_, err = s.ReplaceIfUnchanged(ctx, "lost/create", []byte("replaced"), v)
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("replace whose answer was lost: %v", err)
	}
	p.Set(faultproxy.Fault{})
	body, v2, err := s.Get(ctx, "lost/create")
	if err != nil || !bytes.Equal(body, []byte("replaced")) || v2.Rev != 2 {
		t.Fatalf("after a lost replace answer: %q %+v %v, want the write once, at rev 2", body, v2, err)
	}
}
