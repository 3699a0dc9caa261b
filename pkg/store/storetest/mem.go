package storetest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cmekctl/cmekctl/pkg/store"
)

// Mem is an in-memory store for benchmarks that measure the protocols
// rather than a server's CPU: the same contract (it passes Run), no I/O.
type Mem struct {
	mu   sync.Mutex
	docs map[string]memDoc
}

type memDoc struct {
	rev  uint64
	body []byte
}

var _ store.Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{docs: map[string]memDoc{}} }

func (m *Mem) String() string { return "mem://" }

// Close does nothing.
func (m *Mem) Close() error { return nil }

func ver(rev uint64) store.Version {
	return store.Version{Rev: rev, Token: strconv.FormatUint(rev, 10)}
}

// Get reads a document.
func (m *Mem) Get(ctx context.Context, key string) ([]byte, store.Version, error) {
	if err := store.CheckKey(key); err != nil {
		return nil, store.Version{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[key]
	if !ok {
		return nil, store.Version{}, fmt.Errorf("mem: %s: %w", key, store.ErrNotFound)
	}
	return append([]byte(nil), d.body...), ver(d.rev), nil
}

// CreateOnly writes a new document.
func (m *Mem) CreateOnly(ctx context.Context, key string, body []byte) (store.Version, error) {
	if err := store.CheckKey(key); err != nil {
		return store.Version{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[key]; ok {
		return store.Version{}, fmt.Errorf("mem: %s: %w", key, store.ErrExists)
	}
	m.docs[key] = memDoc{rev: 1, body: append([]byte(nil), body...)}
	return ver(1), nil
}

// ReplaceIfUnchanged writes if the document is at prev.
func (m *Mem) ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev store.Version) (store.Version, error) {
	if err := store.CheckKey(key); err != nil {
		return store.Version{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[key]
	if !ok || prev.Rev == 0 || d.rev != prev.Rev || prev.Token != strconv.FormatUint(d.rev, 10) {
		return store.Version{}, fmt.Errorf("mem: %s: %w", key, store.ErrConflict)
	}
	m.docs[key] = memDoc{rev: d.rev + 1, body: append([]byte(nil), body...)}
	return ver(d.rev + 1), nil
}

// List lists keys under prefix.
func (m *Mem) List(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.docs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}
