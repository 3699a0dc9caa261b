package keyring_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// writeCounter is the real filesystem, counting the keyring files renamed
// into place (one per keyring write).
type writeCounter struct {
	safefile.OS
	mu     sync.Mutex
	writes map[string]int
}

func (w *writeCounter) Rename(o, n string) error {
	if filepath.Base(n) == keyring.FileName {
		w.mu.Lock()
		w.writes[filepath.Dir(n)]++
		w.mu.Unlock()
	}
	return w.OS.Rename(o, n)
}

func (w *writeCounter) reset() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.writes
	w.writes = map[string]int{}
	return out
}

// enableAll enables every region of c in parallel, as enable with a
// cluster config does.
func enableAll(t testing.TB, env keyring.Env, c *cluster, fsys safefile.FS) {
	var wg sync.WaitGroup
	errs := make([]error, len(c.regions))
	for i, rg := range c.regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = keyring.Enable(context.Background(), env, rg.request(c.id, fsys))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestScale3Regions100Nodes asserts the KMS calls and keyring writes of
// each verb over 3 regions × 100 nodes: O(regions) KMS calls, every node
// written exactly once per run.
func TestScale3Regions100Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 300 keyrings")
	}
	ctx := context.Background()
	k := newKMS(t)
	c := planCluster(t, k, "scale", 3, 100)
	wc := &writeCounter{writes: map[string]int{}}
	dirs := c.dirs()
	onceEach := func(what string) {
		t.Helper()
		w := wc.reset()
		if len(w) != len(dirs) {
			t.Fatalf("%s: %d keyrings written, want %d", what, len(w), len(dirs))
		}
		for d, n := range w {
			if n != 1 {
				t.Fatalf("%s: %s written %d times in one run", what, d, n)
			}
		}
	}
	expect := func(what string, wrap, unwrap int64) {
		t.Helper()
		got := k.total()
		if got.Wrap != wrap || got.Unwrap != unwrap {
			t.Fatalf("%s: %d wraps and %d unwraps, want %d and %d", what, got.Wrap, got.Unwrap, wrap, unwrap)
		}
		t.Logf("%s over 3 regions × 100 nodes: %d wrap, %d unwrap", what, got.Wrap, got.Unwrap)
		k.reset()
	}
	enableAll(t, k.env(), c, wc)
	expect("enable", 3, 0)
	onceEach("enable")
	for _, tc := range []struct {
		op             string
		wrap, unwrap   int64
		opt            keyring.RotateOptions
		beforeRotation func()
	}{
		{op: keyring.OpRotateDataKey, unwrap: 3},
		{op: keyring.OpRotateStoreKey, wrap: 3, unwrap: 3},
		{op: keyring.OpRotateCMEK, wrap: 3, unwrap: 3, beforeRotation: func() {
			for _, rg := range c.regions {
				if _, err := k.admin(t, rg.cmek).Rotate(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		if tc.beforeRotation != nil {
			tc.beforeRotation()
		}
		if _, err := rotate(ctx, k.env(), dirs, wc, tc.op, tc.opt); err != nil {
			t.Fatal(err)
		}
		expect(tc.op, tc.wrap, tc.unwrap)
		onceEach(tc.op)
	}
	// Unlock of every node: one unwrap per node start, by design.
	out := shmDir(t)
	for i, d := range dirs {
		if _, err := keyring.Unlock(ctx, k.env(), keyring.Store{Dir: d}, keyring.UnlockOptions{Out: filepath.Join(out, fmt.Sprint(i)), AllowDisk: true, StorePath: "*"}); err != nil {
			t.Fatal(err)
		}
	}
	expect("unlock of every node", 0, 300)
}

// shmDir is a private directory on tmpfs when the machine has one, so the
// test's store keys do not reach a disk.
func shmDir(t testing.TB) string {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	d, err := os.MkdirTemp(base, "cmekctl-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// slowKey adds a fixed latency to every KMS call, as a remote KMS does.
type slowKey struct {
	provider.Key
	d time.Duration
}

func (s slowKey) Wrap(ctx context.Context, p, aad []byte) (provider.Wrapped, error) {
	time.Sleep(s.d)
	return s.Key.Wrap(ctx, p, aad)
}

func (s slowKey) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) ([]byte, error) {
	time.Sleep(s.d)
	return s.Key.Unwrap(ctx, w, aad)
}

// BenchmarkRotateLatency50ms: each verb over 3 regions × N nodes with a KMS
// that takes 50 ms per call, against one region alone and against the same
// 3 regions done one after another (serial), in the same run. The target:
// 3 regions take at most 2× one region.
func BenchmarkRotateLatency50ms(b *testing.B) {
	nodes := 100
	if s := os.Getenv("CMEKCTL_BENCH_NODES"); s != "" {
		fmt.Sscan(s, &nodes)
	}
	ctx := context.Background()
	for _, op := range []string{keyring.OpRotateDataKey, keyring.OpRotateStoreKey, keyring.OpRotateCMEK} {
		for _, shape := range []string{"1region", "3regions", "3regions-serial", "1region-nosync", "3regions-nosync"} {
			b.Run(strings.ReplaceAll(op, " ", "-")+"/"+shape, func(b *testing.B) {
				k := newKMS(b)
				regions := 1
				if shape != "1region" {
					regions = 3
				}
				c := newCluster(b, k, "bench", regions, nodes)
				var fsys safefile.FS
				if strings.HasSuffix(shape, "-nosync") {
					// Every node's disk is its own in a real cluster; here
					// 300 keyrings share one disk, whose fsyncs dominate.
					// nosync takes the disk out to show the orchestration.
					fsys = noSync{}
				}
				env := k.env()
				env.Open = func(uri string) (provider.Key, error) {
					key, err := k.open(uri)
					return slowKey{key, 50 * time.Millisecond}, err
				}
				b.ResetTimer()
				for range b.N {
					if shape == "3regions-serial" {
						for _, rg := range c.regions {
							if _, err := rotate(ctx, env, rg.dirs, nil, op, keyring.RotateOptions{}); err != nil {
								b.Fatal(err)
							}
						}
						continue
					}
					if _, err := rotate(ctx, env, c.dirs(), fsys, op, keyring.RotateOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// noSync is the real filesystem without fsync (benchmarks only).
type noSync struct{ safefile.OS }

type noSyncFile struct{ safefile.File }

func (noSyncFile) Sync() error { return nil }

func (n noSync) OpenFile(name string, flag int, perm os.FileMode) (safefile.File, error) {
	f, err := n.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (noSync) SyncDir(string) error { return nil }
