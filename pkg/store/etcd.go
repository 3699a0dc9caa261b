package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Etcd is the etcd backend: one key per document under /PREFIX/,
// create-only as a transaction on CreateRevision == 0, replace-if-unchanged
// on ModRevision == the revision read.
type Etcd struct {
	Client *clientv3.Client
	prefix string // "/PREFIX/" or "/"
	uri    string
}

var _ Store = (*Etcd)(nil)

func openEtcd(ctx context.Context, loc *Location) (*Etcd, error) {
	cfg := clientv3.Config{
		Endpoints:   loc.Hosts,
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      zap.NewNop(),
	}
	if loc.etcdTLS() {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: loc.Params["SERVER_NAME"]}
		if ca := loc.Params["CA_CERT"]; ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("etcd store: CA_CERT: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd store: CA_CERT %s: no PEM certificate in it", ca)
			}
			tc.RootCAs = pool
		}
		if cert := loc.Params["CLIENT_CERT"]; cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, loc.Params["CLIENT_KEY"])
			if err != nil {
				return nil, fmt.Errorf("etcd store: CLIENT_CERT/CLIENT_KEY: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd store: %w: %v", ErrUnavailable, err)
	}
	return NewEtcd(c, loc.Prefix, loc.Canonical), nil
}

// NewEtcd wraps an etcd client.
func NewEtcd(c *clientv3.Client, prefix, uri string) *Etcd {
	p := "/"
	if prefix != "" {
		p = "/" + prefix + "/"
	}
	return &Etcd{Client: c, prefix: p, uri: uri}
}

func (e *Etcd) String() string { return e.uri }

// Close closes the client.
func (e *Etcd) Close() error { return e.Client.Close() }

// Key is the etcd key of a document (for watches and leases).
func (e *Etcd) Key(key string) string { return e.prefix + key }

// opTimeout bounds one request, so a store that is down is an error, not a
// hang (the client otherwise retries until the context ends).
const etcdOpTimeout = 10 * time.Second

// Get reads a document and its ModRevision.
func (e *Etcd) Get(ctx context.Context, key string) ([]byte, Version, error) {
	if err := CheckKey(key); err != nil {
		return nil, Version{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
	defer cancel()
	resp, err := e.Client.Get(ctx, e.Key(key))
	if err != nil {
		return nil, Version{}, wrapErr("etcd store", "get", key, etcdErr(err))
	}
	if len(resp.Kvs) == 0 {
		return nil, Version{}, wrapErr("etcd store", "get", key, ErrNotFound)
	}
	rev, body, err := decode(resp.Kvs[0].Value)
	if err != nil {
		return nil, Version{}, wrapErr("etcd store", "get", key, err)
	}
	return body, Version{Rev: rev, Token: strconv.FormatInt(resp.Kvs[0].ModRevision, 10)}, nil
}

// CreateOnly writes in a transaction if CreateRevision == 0.
func (e *Etcd) CreateOnly(ctx context.Context, key string, body []byte) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	k := e.Key(key)
	return e.txn(ctx, "create", key, clientv3.Compare(clientv3.CreateRevision(k), "=", 0), clientv3.OpPut(k, string(encode(1, body))), 1, ErrExists)
}

// ReplaceIfUnchanged writes in a transaction if ModRevision == the one read.
func (e *Etcd) ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev Version) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	mod, err := strconv.ParseInt(prev.Token, 10, 64)
	if err != nil || mod <= 0 {
		return Version{}, wrapErr("etcd store", "replace", key, fmt.Errorf("%w (no revision read)", ErrConflict))
	}
	k := e.Key(key)
	return e.txn(ctx, "replace", key, clientv3.Compare(clientv3.ModRevision(k), "=", mod), clientv3.OpPut(k, string(encode(prev.Rev+1, body))), prev.Rev+1, ErrConflict)
}

func (e *Etcd) txn(ctx context.Context, op, key string, cmp clientv3.Cmp, put clientv3.Op, rev uint64, failed error) (Version, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
	defer cancel()
	resp, err := e.Client.Txn(ctx).If(cmp).Then(put).Commit()
	if err != nil {
		return Version{}, wrapErr("etcd store", op, key, etcdErr(err))
	}
	if !resp.Succeeded {
		return Version{}, wrapErr("etcd store", op, key, failed)
	}
	return Version{Rev: rev, Token: strconv.FormatInt(resp.Header.Revision, 10)}, nil
}

// List lists the keys under prefix.
func (e *Etcd) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
	defer cancel()
	resp, err := e.Client.Get(ctx, e.prefix+prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd store: list %s: %w", prefix, etcdErr(err))
	}
	var keys []string
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), e.prefix)
		if CheckKey(k) == nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func etcdErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return err
}

// Leaser is a store with native leases: etcd's. The operator lease uses it
// when the store has it: the key lives only as long as its holder keeps the
// lease alive, and the server, not a waiter's clock, lets it go.
type Leaser interface {
	// LeaseCreate writes body under key bound to a new lease of ttl, if
	// no document is there (ErrExists otherwise), and keeps the lease
	// alive until release. lost is closed if the lease ends first.
	LeaseCreate(ctx context.Context, key string, body []byte, ttl time.Duration) (release func(context.Context) error, lost <-chan struct{}, err error)
	// LeaseRevoke ends the lease that key is bound to, deleting it.
	LeaseRevoke(ctx context.Context, key string) error
}

var _ Leaser = (*Etcd)(nil)

// LeaseCreate puts key with a new lease in a transaction on
// CreateRevision == 0, and keeps the lease alive.
func (e *Etcd) LeaseCreate(ctx context.Context, key string, body []byte, ttl time.Duration) (func(context.Context) error, <-chan struct{}, error) {
	if err := CheckKey(key); err != nil {
		return nil, nil, err
	}
	secs := max(int64(ttl/time.Second), 2)
	octx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
	defer cancel()
	g, err := e.Client.Grant(octx, secs)
	if err != nil {
		return nil, nil, wrapErr("etcd store", "lease", key, etcdErr(err))
	}
	k := e.Key(key)
	resp, err := e.Client.Txn(octx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(encode(1, body)), clientv3.WithLease(g.ID))).Commit()
	if err != nil || !resp.Succeeded {
		_, _ = e.Client.Revoke(context.WithoutCancel(ctx), g.ID)
		if err != nil {
			return nil, nil, wrapErr("etcd store", "lease", key, etcdErr(err))
		}
		return nil, nil, wrapErr("etcd store", "lease", key, ErrExists)
	}
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ch, err := e.Client.KeepAlive(kctx, g.ID)
	if err != nil {
		stop()
		_, _ = e.Client.Revoke(context.WithoutCancel(ctx), g.ID)
		return nil, nil, wrapErr("etcd store", "lease", key, etcdErr(err))
	}
	lost := make(chan struct{})
	go func() {
		for range ch {
		}
		close(lost)
	}()
	release := func(ctx context.Context) error {
		stop()
		rctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
		defer cancel()
		_, err := e.Client.Revoke(rctx, g.ID)
		return err
	}
	return release, lost, nil
}

// LeaseRevoke revokes the lease key is bound to.
func (e *Etcd) LeaseRevoke(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
	defer cancel()
	resp, err := e.Client.Get(ctx, e.Key(key))
	if err != nil {
		return wrapErr("etcd store", "lease", key, etcdErr(err))
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return wrapErr("etcd store", "lease", key, ErrNotFound)
	}
	_, err = e.Client.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	return err
}

// Watcher is a store that can say when a document changes (etcd's watch),
// so a loop that polls it can wake at once instead of at its next tick.
type Watcher interface {
	// Watch returns a channel that receives after each change of key,
	// until ctx ends.
	Watch(ctx context.Context, key string) <-chan struct{}
}

var _ Watcher = (*Etcd)(nil)

// Watch watches key.
func (e *Etcd) Watch(ctx context.Context, key string) <-chan struct{} {
	out := make(chan struct{}, 1)
	wc := e.Client.Watch(clientv3.WithRequireLeader(ctx), e.Key(key))
	go func() {
		defer close(out)
		for range wc {
			select {
			case out <- struct{}{}:
			default: // one wake-up pending is enough
			}
		}
	}()
	return out
}
