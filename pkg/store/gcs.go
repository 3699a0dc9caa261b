package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// GCS is the Google Cloud Storage backend: one object per document,
// create-only through ifGenerationMatch=0, replace-if-unchanged through
// ifGenerationMatch=GENERATION, each write a single JSON upload (no
// resumable session). It honours STORAGE_EMULATOR_HOST, as the Go client
// does.
type GCS struct {
	client *storage.Client
	bucket string
	prefix string
	uri    string
}

var _ Store = (*GCS)(nil)

func openGCS(ctx context.Context, loc *Location) (*GCS, error) {
	client, err := storage.NewClient(ctx, storage.WithJSONReads())
	if err != nil {
		return nil, fmt.Errorf("gcs store: %w", err)
	}
	return NewGCS(client, loc.Bucket, loc.Prefix, loc.Canonical), nil
}

// NewGCS wraps a storage client (tests pass one for a local server).
func NewGCS(client *storage.Client, bucket, prefix, uri string) *GCS {
	return &GCS{client: client, bucket: bucket, prefix: prefix, uri: uri}
}

// NewGCSClient opens a client with extra options (tests: an endpoint).
func NewGCSClient(ctx context.Context, opts ...option.ClientOption) (*storage.Client, error) {
	return storage.NewClient(ctx, append([]option.ClientOption{storage.WithJSONReads()}, opts...)...)
}

func (g *GCS) String() string { return g.uri }

// Close closes the client.
func (g *GCS) Close() error { return g.client.Close() }

func (g *GCS) object(key string) *storage.ObjectHandle {
	name := key
	if g.prefix != "" {
		name = path.Join(g.prefix, key)
	}
	return g.client.Bucket(g.bucket).Object(name)
}

// Get reads a document and its generation.
func (g *GCS) Get(ctx context.Context, key string) ([]byte, Version, error) {
	if err := CheckKey(key); err != nil {
		return nil, Version{}, err
	}
	r, err := g.object(key).NewReader(ctx)
	if err != nil {
		return nil, Version{}, wrapErr("gcs store", "get", key, gcsErr(err, ErrNotFound))
	}
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, maxDoc+1))
	if err != nil {
		return nil, Version{}, wrapErr("gcs store", "get", key, gcsErr(err, ErrNotFound))
	}
	if len(raw) > maxDoc {
		return nil, Version{}, wrapErr("gcs store", "get", key, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxDoc))
	}
	rev, body, err := decode(raw)
	if err != nil {
		return nil, Version{}, wrapErr("gcs store", "get", key, err)
	}
	return body, Version{Rev: rev, Token: strconv.FormatInt(r.Attrs.Generation, 10)}, nil
}

// CreateOnly writes with ifGenerationMatch=0.
func (g *GCS) CreateOnly(ctx context.Context, key string, body []byte) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	return g.put(ctx, "create", key, 1, body, storage.Conditions{DoesNotExist: true}, ErrExists)
}

// ReplaceIfUnchanged writes with ifGenerationMatch=the generation read.
func (g *GCS) ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev Version) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	gen, err := strconv.ParseInt(prev.Token, 10, 64)
	if err != nil || gen <= 0 {
		return Version{}, wrapErr("gcs store", "replace", key, fmt.Errorf("%w (no generation read)", ErrConflict))
	}
	return g.put(ctx, "replace", key, prev.Rev+1, body, storage.Conditions{GenerationMatch: gen}, ErrConflict)
}

func (g *GCS) put(ctx context.Context, op, key string, rev uint64, body []byte, cond storage.Conditions, failed error) (Version, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := g.object(key).If(cond).NewWriter(ctx)
	w.ChunkSize = 0 // one request; no resumable upload session
	w.ContentType = "application/octet-stream"
	if _, err := w.Write(encode(rev, body)); err != nil {
		_ = w.Close()
		return Version{}, wrapErr("gcs store", op, key, gcsErr(err, failed))
	}
	if err := w.Close(); err != nil {
		return Version{}, wrapErr("gcs store", op, key, gcsErr(err, failed))
	}
	return Version{Rev: rev, Token: strconv.FormatInt(w.Attrs().Generation, 10)}, nil
}

// List lists the keys under prefix.
func (g *GCS) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	full := prefix
	if g.prefix != "" {
		full = g.prefix + "/" + prefix
	}
	q := &storage.Query{Prefix: full}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, err
	}
	var keys []string
	it := g.client.Bucket(g.bucket).Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gcs store: list %s: %w", prefix, gcsErr(err, ErrNotFound))
		}
		k := a.Name
		if g.prefix != "" {
			k = strings.TrimPrefix(k, g.prefix+"/")
		}
		if CheckKey(k) == nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// gcsErr classifies a client error: a failed precondition is failed, a
// missing object ErrNotFound (for a replace: ErrConflict), 429, 5xx and
// network errors ErrUnavailable.
func gcsErr(err error, failed error) error {
	if errors.Is(err, storage.ErrObjectNotExist) {
		if failed == ErrConflict {
			return fmt.Errorf("%w (it is gone)", ErrConflict)
		}
		return ErrNotFound
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch {
		case ge.Code == http.StatusPreconditionFailed:
			return failed
		case ge.Code == http.StatusNotFound:
			if failed == ErrConflict {
				return fmt.Errorf("%w (it is gone)", ErrConflict)
			}
			return ErrNotFound
		case ge.Code == http.StatusTooManyRequests || ge.Code >= 500:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
