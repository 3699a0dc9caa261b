package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	gcs "google.golang.org/api/storage/v1"
)

// GCS is the Google Cloud Storage backend: one object per document,
// create-only through ifGenerationMatch=0, replace-if-unchanged through
// ifGenerationMatch=GENERATION, each write a single JSON API upload (no
// resumable session). It honours STORAGE_EMULATOR_HOST, as Google's Go
// client does.
//
// It speaks the JSON API through Google's generated REST client
// (google.golang.org/api/storage/v1), which cloud.google.com/go/storage
// itself uses for JSON: that client also links a gRPC transport with xDS,
// Envoy's protobufs and a metrics exporter, whose package init ran at every
// cmekctl start (about 2 ms and 130 packages; docs/performance.md).
type GCS struct {
	svc    *gcs.Service
	bucket string
	prefix string
	uri    string
}

var (
	_ Store             = (*GCS)(nil)
	_ ConditionalGetter = (*GCS)(nil)
)

func openGCS(ctx context.Context, loc *Location) (*GCS, error) {
	return NewGCS(ctx, loc.Bucket, loc.Prefix, loc.Canonical)
}

// NewGCS opens bucket/prefix through Google's application default
// credentials, or without credentials at STORAGE_EMULATOR_HOST when it is
// set (as cloud.google.com/go/storage does); opts come last (tests: an
// endpoint).
func NewGCS(ctx context.Context, bucket, prefix, uri string, opts ...option.ClientOption) (*GCS, error) {
	base := []option.ClientOption{option.WithScopes(gcs.DevstorageReadWriteScope)}
	if host := os.Getenv("STORAGE_EMULATOR_HOST"); host != "" {
		ep, err := emulatorEndpoint(host)
		if err != nil {
			return nil, err
		}
		base = []option.ClientOption{option.WithoutAuthentication(), option.WithEndpoint(ep)}
	}
	svc, err := gcs.NewService(ctx, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("gcs store: %w", err)
	}
	return &GCS{svc: svc, bucket: bucket, prefix: prefix, uri: uri}, nil
}

// emulatorEndpoint turns STORAGE_EMULATOR_HOST (HOST:PORT, or a URL) into
// the JSON API's base URL on it.
func emulatorEndpoint(host string) (string, error) {
	u := &url.URL{Scheme: "http", Host: host}
	if strings.Contains(host, "://") {
		var err error
		if u, err = url.Parse(host); err != nil || u.Host == "" {
			return "", fmt.Errorf("gcs store: STORAGE_EMULATOR_HOST %q: want HOST:PORT or http://HOST:PORT", host)
		}
	}
	u.Path = "/storage/v1/"
	return u.String(), nil
}

func (g *GCS) String() string { return g.uri }

// Close has nothing to release: the client's idle connections close with
// the process.
func (g *GCS) Close() error { return nil }

func (g *GCS) name(key string) string {
	if g.prefix == "" {
		return key
	}
	return path.Join(g.prefix, key)
}

// Get reads a document and its generation.
func (g *GCS) Get(ctx context.Context, key string) ([]byte, Version, error) {
	if err := CheckKey(key); err != nil {
		return nil, Version{}, err
	}
	body, v, err := g.read(ctx, key, 0)
	if err != nil {
		return nil, Version{}, wrapErr("gcs store", "get", key, err)
	}
	return body, v, nil
}

// GetIfChanged reads with ifGenerationNotMatch=the generation held: GCS
// answers 304 and no body while the object is still at it.
func (g *GCS) GetIfChanged(ctx context.Context, key string, prev Version) ([]byte, Version, bool, error) {
	if err := CheckKey(key); err != nil {
		return nil, Version{}, false, err
	}
	gen, err := strconv.ParseInt(prev.Token, 10, 64)
	if err != nil || gen <= 0 {
		gen = 0 // not a generation: read it whole
	}
	body, v, err := g.read(ctx, key, gen)
	switch {
	case errors.Is(err, errNotModified):
		return nil, prev, false, nil
	case err != nil:
		return nil, Version{}, false, wrapErr("gcs store", "get", key, err)
	case gen > 0 && v == prev:
		// A server that ignores the condition sends the same
		// generation again (fake-gcs-server does).
		return nil, prev, false, nil
	}
	return body, v, true, nil
}

var errNotModified = errors.New("not modified")

// read downloads key, only if its generation is not notMatch when that is
// above 0 (errNotModified otherwise).
func (g *GCS) read(ctx context.Context, key string, notMatch int64) ([]byte, Version, error) {
	var raw []byte
	var gen int64
	err := retryGCS(ctx, func() error {
		call := g.svc.Objects.Get(g.bucket, g.name(key)).Context(ctx)
		if notMatch > 0 {
			call = call.IfGenerationNotMatch(notMatch)
		}
		res, err := call.Download()
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if raw, err = io.ReadAll(io.LimitReader(res.Body, maxDoc+1)); err != nil {
			return err
		}
		gen, err = strconv.ParseInt(res.Header.Get("X-Goog-Generation"), 10, 64)
		if err != nil || gen <= 0 {
			return fmt.Errorf("%w: the answer names no object generation", ErrCorrupt)
		}
		return nil
	})
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusNotModified {
		return nil, Version{}, errNotModified
	}
	if err != nil {
		return nil, Version{}, gcsErr(err, ErrNotFound)
	}
	if len(raw) > maxDoc {
		return nil, Version{}, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxDoc)
	}
	rev, body, err := decode(raw)
	if err != nil {
		return nil, Version{}, err
	}
	return body, Version{Rev: rev, Token: strconv.FormatInt(gen, 10)}, nil
}

// CreateOnly writes with ifGenerationMatch=0.
func (g *GCS) CreateOnly(ctx context.Context, key string, body []byte) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	return g.put(ctx, "create", key, 1, body, 0, ErrExists)
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
	return g.put(ctx, "replace", key, prev.Rev+1, body, gen, ErrConflict)
}

// put uploads in one multipart request, only if the object's generation
// is ifGen (0: no object). A retry after a lost answer meets its own write
// and is refused as failed: the caller reads again.
func (g *GCS) put(ctx context.Context, op, key string, rev uint64, body []byte, ifGen int64, failed error) (Version, error) {
	data := encode(rev, body)
	var gen int64
	err := retryGCS(ctx, func() error {
		obj := &gcs.Object{Name: g.name(key), ContentType: "application/octet-stream"}
		o, err := g.svc.Objects.Insert(g.bucket, obj).IfGenerationMatch(ifGen).
			Media(bytes.NewReader(data), googleapi.ChunkSize(0), googleapi.EnableAutoChecksum()).
			Fields("generation").Context(ctx).Do()
		if err != nil {
			return err
		}
		gen = o.Generation
		return nil
	})
	if err != nil {
		return Version{}, wrapErr("gcs store", op, key, gcsErr(err, failed))
	}
	if gen <= 0 {
		return Version{}, wrapErr("gcs store", op, key, fmt.Errorf("%w: the answer names no object generation", ErrUnavailable))
	}
	return Version{Rev: rev, Token: strconv.FormatInt(gen, 10)}, nil
}

// List lists the keys under prefix, a page at a time.
func (g *GCS) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	full := prefix
	if g.prefix != "" {
		full = g.prefix + "/" + prefix
	}
	var keys []string
	for token := ""; ; {
		var page *gcs.Objects
		err := retryGCS(ctx, func() error {
			var err error
			page, err = g.svc.Objects.List(g.bucket).Prefix(full).PageToken(token).MaxResults(gcsListPage).
				Fields("items(name)", "nextPageToken").Context(ctx).Do()
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("gcs store: list %s: %w", prefix, gcsErr(err, ErrNotFound))
		}
		for _, o := range page.Items {
			k := o.Name
			if g.prefix != "" {
				k = strings.TrimPrefix(k, g.prefix+"/")
			}
			if CheckKey(k) == nil {
				keys = append(keys, k)
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// gcsListPage is how many names one list request asks for (the JSON API's
// own maximum).
var gcsListPage int64 = 1000

// gcsAttempts bounds the tries of one request. Every request this backend
// makes is idempotent (reads, lists, writes conditional on a generation),
// so each is retried on what GCS's retry strategy names transient: 408,
// 429, 5xx and network errors, with exponential backoff and jitter.
const gcsAttempts = 5

// gcsBackoff is the wait before the second try; it doubles each time.
var gcsBackoff = 100 * time.Millisecond

func retryGCS(ctx context.Context, call func() error) error {
	var err error
	for attempt := range gcsAttempts {
		if attempt > 0 {
			d := gcsBackoff << (attempt - 1)
			d += rand.N(d / 2)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		if err = call(); err == nil || !transientGCS(ctx, err) {
			return err
		}
	}
	return err
}

func transientGCS(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, ErrCorrupt) {
		return false
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code == http.StatusRequestTimeout || ge.Code == http.StatusTooManyRequests || ge.Code >= 500
	}
	return true // the request or its answer was lost on the way
}

// gcsErr classifies a client error: a failed precondition is failed, a
// missing object ErrNotFound (for a replace: ErrConflict), 408, 429, 5xx and
// network errors ErrUnavailable.
func gcsErr(err error, failed error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
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
		case ge.Code == http.StatusRequestTimeout || ge.Code == http.StatusTooManyRequests || ge.Code >= 500:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
