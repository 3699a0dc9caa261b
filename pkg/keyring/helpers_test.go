package keyring_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/filekms"
	"github.com/cmekctl/cmekctl/pkg/safefile"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// long reports whether the long form of the crash and fault tests runs
// (CMEKCTL_LONG=1).
func long() bool { return os.Getenv("CMEKCTL_LONG") == "1" }

// kms is the embedded KMS in a temporary directory, opened through
// provider.Registry{"file-kms": filekms.Open} and wrapped with
// provider.NewCounting; one counter per URI, for the life of the kms (or
// until reset).
type kms struct {
	dir string
	reg provider.Registry

	mu    sync.Mutex
	keys  map[string]*provider.Counting
	clock time.Time
}

func newKMS(t testing.TB) *kms {
	return &kms{dir: filepath.Join(t.TempDir(), "kms"), reg: provider.Registry{filekms.Scheme: filekms.Open},
		keys: map[string]*provider.Counting{}, clock: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// create makes a new file-kms key and returns its URI.
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

// admin returns the administrative handle of a key (for rotate, disable...).
func (k *kms) admin(t testing.TB, uri string) *filekms.Key {
	t.Helper()
	u, _ := url.Parse(uri)
	key, err := filekms.OpenWith(u, filekms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func (k *kms) open(uri string) (provider.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.keys[uri]; ok {
		return c, nil
	}
	key, err := k.reg.Open(uri)
	if err != nil {
		return nil, err
	}
	c := provider.NewCounting(key)
	k.keys[uri] = c
	return c, nil
}

// counts returns the calls made to uri since the last reset.
func (k *kms) counts(uri string) provider.Counts {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.keys[uri]; ok {
		return c.Counts()
	}
	return provider.Counts{}
}

func (k *kms) total() provider.Counts {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s provider.Counts
	for _, c := range k.keys {
		x := c.Counts()
		s.Wrap += x.Wrap
		s.Unwrap += x.Unwrap
		s.Rewrap += x.Rewrap
		s.Describe += x.Describe
	}
	return s
}

func (k *kms) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = map[string]*provider.Counting{}
}

func (k *kms) now() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.clock
}

func (k *kms) advance(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.clock = k.clock.Add(d)
}

func (k *kms) env() keyring.Env { return keyring.Env{Open: k.open, Now: k.now} }

// region is the nodes of one region, enabled under one CMEK key.
type region struct {
	name  string
	cmek  string
	dirs  []string
	nodes []string
}

// cluster is a set of enabled regions.
type cluster struct {
	id      string
	base    string // the node directories are under it
	kms     *kms
	regions []*region
}

// newCluster creates one CMEK key per region and enables regions×perRegion
// nodes under a temporary directory (real filesystem).
func newCluster(t testing.TB, k *kms, id string, regions, perRegion int) *cluster {
	t.Helper()
	c := planCluster(t, k, id, regions, perRegion)
	for _, rg := range c.regions {
		if _, err := keyring.Enable(context.Background(), k.env(), rg.request(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// planCluster is newCluster without the enable: keys and directory names.
func planCluster(t testing.TB, k *kms, id string, regions, perRegion int) *cluster {
	t.Helper()
	base := t.TempDir()
	c := &cluster{id: id, kms: k, base: base}
	for r := range regions {
		name := fmt.Sprintf("region-%d", r+1)
		rg := &region{name: name, cmek: k.create(t, id+"-"+name)}
		for n := range perRegion {
			rg.nodes = append(rg.nodes, fmt.Sprintf("%s-node-%d", name, n+1))
			rg.dirs = append(rg.dirs, filepath.Join(base, name, fmt.Sprintf("node-%d", n+1)))
		}
		c.regions = append(c.regions, rg)
	}
	return c
}

func (r *region) request(cluster string, fsys safefile.FS) keyring.EnableRequest {
	req := keyring.EnableRequest{Cluster: cluster, Region: r.name, CMEK: r.cmek}
	for i, d := range r.dirs {
		req.Nodes = append(req.Nodes, keyring.EnableNode{Store: keyring.Store{Dir: d, FS: fsys}, Name: r.nodes[i]})
	}
	return req
}

// rebase returns the cluster's node directories moved under base.
func (c *cluster) rebase(base string) []string {
	var out []string
	for _, d := range c.dirs() {
		rel, _ := filepath.Rel(c.base, d)
		out = append(out, filepath.Join(base, rel))
	}
	return out
}

func (c *cluster) dirs() []string {
	var out []string
	for _, r := range c.regions {
		out = append(out, r.dirs...)
	}
	return out
}

func stores(dirs []string, fsys safefile.FS) []keyring.Store {
	out := make([]keyring.Store, len(dirs))
	for i, d := range dirs {
		out[i] = keyring.Store{Dir: d, FS: fsys, LockWait: 20 * time.Second}
	}
	return out
}

// rotate loads and locks the keyrings and runs one rotation.
func rotate(ctx context.Context, env keyring.Env, dirs []string, fsys safefile.FS, op string, opt keyring.RotateOptions) (*keyring.Result, error) {
	g, err := keyring.LoadGroup(ctx, stores(dirs, fsys), true)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	return keyring.Rotate(ctx, env, g, op, opt)
}

func load(t testing.TB, dir string) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Store{Dir: dir}.Load()
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// seal seals plaintext on the node of dir.
func seal(t testing.TB, env keyring.Env, dir string, plaintext []byte, opt stream.Options) []byte {
	t.Helper()
	s, err := keyring.OpenSealer(context.Background(), env, keyring.Store{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out bytes.Buffer
	if _, err := s.Seal(&out, bytes.NewReader(plaintext), opt); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// open opens sealed data on the node of dir.
func open(env keyring.Env, dir string, sealed []byte, opt stream.Options) ([]byte, error) {
	s, err := keyring.OpenSealer(context.Background(), env, keyring.Store{Dir: dir})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out bytes.Buffer
	_, err = s.Open(&out, bytes.NewReader(sealed), opt)
	return out.Bytes(), err
}

// copyTree copies a directory of keyrings (regular files and directories,
// modes kept; the lock file is left out).
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm())
		case fi.Name() == keyring.LockName:
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// gen is a cheap deterministic reader of n bytes (a repeating pattern,
// copied): it never holds the stream, and costs about a memcpy.
type gen struct {
	n, off int64
}

var pattern = func() []byte {
	p := make([]byte, 251*256) // a prime period, so chunks differ
	for i := range p {
		p[i] = byte(i % 251)
	}
	return p
}()

func (g *gen) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if rem := g.n - g.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n := 0
	for n < len(p) {
		n += copy(p[n:], pattern[(g.off+int64(n))%251:])
	}
	g.off += int64(n)
	return n, nil
}

func fileInfo(t testing.TB, p string) (data []byte, mode os.FileMode, mtime time.Time) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(p)
	return data, fi.Mode(), fi.ModTime()
}
