package cluster_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/filekms"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// kms is file-kms with a call count over every key.
type kms struct {
	dir  string
	mu   sync.Mutex
	keys map[string]*provider.Counting
}

func newKMS(t testing.TB) *kms {
	return &kms{dir: filepath.Join(t.TempDir(), "kms"), keys: map[string]*provider.Counting{}}
}

func (k *kms) create(t testing.TB, name string) string {
	t.Helper()
	uri := filekms.Scheme + "://" + filepath.Join(k.dir, name)
	u, _ := url.Parse(uri)
	key, err := filekms.OpenWith(u, filekms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := key.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	return uri
}

func (k *kms) env() keyring.Env {
	reg := provider.Registry{filekms.Scheme: filekms.Open}
	return keyring.Env{Open: func(uri string) (provider.Key, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if c, ok := k.keys[uri]; ok {
			return c, nil
		}
		key, err := reg.Open(uri)
		if err != nil {
			return nil, err
		}
		c := provider.NewCounting(key)
		k.keys[uri] = c
		return c, nil
	}}
}

// enableAndUnlock enables node n1 of region r1 of cluster c1 in s, on a new
// file-kms key of k's, and unlocks it as a host with a temporary directory
// of its own would: the agent tests' starting point.
func enableAndUnlock(ctx context.Context, t testing.TB, s store.Store, k *kms) (cluster.UnlockOptions, *cluster.UnlockResult) {
	t.Helper()
	if _, err := cluster.Enable(ctx, s, k.env(), "c1", "r1", k.create(t, "r1"), []string{"n1"}); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	o := cluster.UnlockOptions{Cluster: "c1", Region: "r1", Node: "n1", Cache: filepath.Join(host, "cache"),
		Unlock: keyring.UnlockOptions{Out: filepath.Join(host, "out"), AllowDisk: true, StorePaths: []string{"/mnt/d1"}}}
	res, err := cluster.Unlock(ctx, s, k.env(), o)
	if err != nil {
		t.Fatal(err)
	}
	return o, res
}

func (k *kms) total() provider.Counts {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s provider.Counts
	for _, c := range k.keys {
		x := c.Counts()
		s.Wrap += x.Wrap
		s.Unwrap += x.Unwrap
	}
	return s
}

func (k *kms) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = map[string]*provider.Counting{}
}

// counted wraps a store: it counts requests by kind, adds latency, and
// injects faults on keys that match.
type counted struct {
	store.Store
	mu      sync.Mutex
	n       map[string]int
	latency time.Duration
	// down: every request fails with ErrUnavailable.
	down bool
	// loseAnswer: the next N replaces of a key containing this substring
	// land and then report ErrUnavailable (a lost answer).
	loseAnswer string
	loseN      int
	// failAfter: replaces of keyrings fail (ErrUnavailable, not applied)
	// after this many succeeded (0: never).
	failAfter int
	replaced  int
}

func count(s store.Store) *counted { return &counted{Store: s, n: map[string]int{}} }

func (c *counted) hit(kind string) error {
	if c.latency > 0 {
		time.Sleep(c.latency)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[kind]++
	if c.down {
		return fmt.Errorf("test store: %w", store.ErrUnavailable)
	}
	return nil
}

func (c *counted) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func (c *counted) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

func (c *counted) total() int {
	n := 0
	for _, v := range c.counts() {
		n += v
	}
	return n
}

func (c *counted) Get(ctx context.Context, key string) ([]byte, store.Version, error) {
	if err := c.hit("get"); err != nil {
		return nil, store.Version{}, err
	}
	return c.Store.Get(ctx, key)
}

// GetIfChanged counts one get and keeps the inner store's conditional read.
func (c *counted) GetIfChanged(ctx context.Context, key string, prev store.Version) ([]byte, store.Version, bool, error) {
	if err := c.hit("get"); err != nil {
		return nil, store.Version{}, false, err
	}
	return store.GetIfChanged(ctx, c.Store, key, prev)
}

func (c *counted) CreateOnly(ctx context.Context, key string, body []byte) (store.Version, error) {
	if err := c.hit("create"); err != nil {
		return store.Version{}, err
	}
	return c.Store.CreateOnly(ctx, key, body)
}

func (c *counted) ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev store.Version) (store.Version, error) {
	if err := c.hit("replace"); err != nil {
		return store.Version{}, err
	}
	isKeyring := strings.Contains(key, "/keyrings/")
	c.mu.Lock()
	if isKeyring && c.failAfter > 0 {
		if c.replaced >= c.failAfter {
			c.mu.Unlock()
			return store.Version{}, fmt.Errorf("test store: refused: %w", store.ErrUnavailable)
		}
		c.replaced++ // counted when let through, so parallel writers cannot all pass
	}
	lose := c.loseAnswer != "" && strings.Contains(key, c.loseAnswer) && c.loseN > 0
	if lose {
		c.loseN--
	}
	c.mu.Unlock()
	v, err := c.Store.ReplaceIfUnchanged(ctx, key, body, prev)
	if err == nil && lose {
		return store.Version{}, fmt.Errorf("test store: answer lost: %w", store.ErrUnavailable)
	}
	return v, err
}

func (c *counted) List(ctx context.Context, prefix string) ([]string, error) {
	if err := c.hit("list"); err != nil {
		return nil, err
	}
	return c.Store.List(ctx, prefix)
}

func dirStore(t testing.TB) store.Store {
	t.Helper()
	d, err := store.OpenDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func nodeNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}
