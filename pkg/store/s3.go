package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3 is the S3 backend: one object per document, create-only through
// If-None-Match: *, replace-if-unchanged through If-Match: ETag (the ETag
// differs on every write because the revision line differs). No multipart
// upload, no conditional delete.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string
	uri    string
	// ConflictRetries bounds the re-sends of a conditional PUT that S3
	// answered 409 ConditionalRequestConflict (another conditional write to
	// the key was in flight); default 5.
	ConflictRetries int
}

var _ Store = (*S3)(nil)

func openS3(ctx context.Context, loc *Location) (*S3, error) {
	// Keep as many idle connections as an operation sends requests at
	// once (the SDK keeps 10 per host): a rotation of many nodes reuses its
	// connections instead of opening one per request.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns, t.MaxIdleConnsPerHost = MaxConcurrent, MaxConcurrent
	})
	opts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if r := loc.Params["AWS_REGION"]; r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("%w: s3://%s: no region: add AWS_REGION=... to the URI or set AWS_REGION", ErrURI, loc.Bucket)
	}
	if role := loc.Params["ASSUME_ROLE"]; role != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), role))
	}
	endpoint := loc.Params["AWS_ENDPOINT"]
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		// A checksum only when the operation requires one: no aws-chunked
		// trailers, which some S3-compatible servers do not read.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return NewS3(client, loc.Bucket, loc.Prefix, loc.Canonical), nil
}

// NewS3 wraps an S3 client (tests pass one configured for a local server).
func NewS3(client *s3.Client, bucket, prefix, uri string) *S3 {
	return &S3{client: client, bucket: bucket, prefix: prefix, uri: uri}
}

func (s *S3) String() string { return s.uri }

// Close does nothing: the SDK's client holds no connections to close.
func (s *S3) Close() error { return nil }

func (s *S3) objectKey(key string) string {
	if s.prefix == "" {
		return key
	}
	return path.Join(s.prefix, key)
}

// Get reads a document and its ETag.
func (s *S3) Get(ctx context.Context, key string) ([]byte, Version, error) {
	body, v, _, err := s.get(ctx, key, "")
	return body, v, err
}

var _ ConditionalGetter = (*S3)(nil)

// GetIfChanged reads with If-None-Match: the ETag of prev; S3 answers 304
// Not Modified, with no body, while the document is unchanged (the revision
// line makes every write's ETag new, so an ETag never comes back).
func (s *S3) GetIfChanged(ctx context.Context, key string, prev Version) ([]byte, Version, bool, error) {
	body, v, notModified, err := s.get(ctx, key, prev.Token)
	if notModified || err == nil && v == prev {
		return nil, prev, false, err
	}
	return body, v, err == nil, err
}

// get is a GetObject, conditional on ifNoneMatch when it is set.
func (s *S3) get(ctx context.Context, key, ifNoneMatch string) ([]byte, Version, bool, error) {
	if err := CheckKey(key); err != nil {
		return nil, Version{}, false, err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.objectKey(key))}
	if ifNoneMatch != "" {
		in.IfNoneMatch = aws.String(ifNoneMatch)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		var re *smithyhttp.ResponseError
		if ifNoneMatch != "" && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotModified {
			return nil, Version{}, true, nil
		}
		return nil, Version{}, false, wrapErr("s3 store", "get", key, s3Err(err, ErrNotFound))
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxDoc+1))
	if err != nil {
		return nil, Version{}, false, wrapErr("s3 store", "get", key, fmt.Errorf("%w: %v", ErrUnavailable, err))
	}
	if len(raw) > maxDoc {
		return nil, Version{}, false, wrapErr("s3 store", "get", key, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxDoc))
	}
	rev, body, err := decode(raw)
	if err != nil {
		return nil, Version{}, false, wrapErr("s3 store", "get", key, err)
	}
	return body, Version{Rev: rev, Token: aws.ToString(out.ETag)}, false, nil
}

// CreateOnly puts with If-None-Match: *.
func (s *S3) CreateOnly(ctx context.Context, key string, body []byte) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	return s.put(ctx, "create", key, 1, body, func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }, ErrExists)
}

// ReplaceIfUnchanged puts with If-Match: the ETag read.
func (s *S3) ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev Version) (Version, error) {
	if err := CheckKey(key); err != nil {
		return Version{}, err
	}
	if prev.Token == "" {
		return Version{}, wrapErr("s3 store", "replace", key, fmt.Errorf("%w (no ETag read)", ErrConflict))
	}
	return s.put(ctx, "replace", key, prev.Rev+1, body, func(in *s3.PutObjectInput) { in.IfMatch = aws.String(prev.Token) }, ErrConflict)
}

func (s *S3) put(ctx context.Context, op, key string, rev uint64, body []byte, cond func(*s3.PutObjectInput), failed error) (Version, error) {
	raw := encode(rev, body)
	retries := s.ConflictRetries
	if retries == 0 {
		retries = 5
	}
	for attempt := 0; ; attempt++ {
		in := &s3.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           aws.String(s.objectKey(key)),
			Body:          bytes.NewReader(raw),
			ContentLength: aws.Int64(int64(len(raw))),
			ContentType:   aws.String("application/octet-stream"),
		}
		cond(in)
		out, err := s.client.PutObject(ctx, in)
		if err == nil {
			return Version{Rev: rev, Token: aws.ToString(out.ETag)}, nil
		}
		if isConditionalConflict(err) && attempt < retries {
			// Another conditional write to this key was in flight; S3 says
			// send ours again, and its condition decides.
			select {
			case <-ctx.Done():
				return Version{}, wrapErr("s3 store", op, key, ctx.Err())
			case <-time.After(time.Duration(20<<attempt) * time.Millisecond):
			}
			continue
		}
		return Version{}, wrapErr("s3 store", op, key, s3Err(err, failed))
	}
}

// List lists the keys under prefix, page by page.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	full := s.objectKey(prefix)
	if s.prefix != "" && prefix == "" {
		full = s.prefix + "/"
	}
	if strings.HasSuffix(prefix, "/") && !strings.HasSuffix(full, "/") {
		full += "/"
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(full)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3 store: list %s: %w", prefix, s3Err(err, ErrNotFound))
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if s.prefix != "" {
				k = strings.TrimPrefix(k, s.prefix+"/")
			}
			if CheckKey(k) == nil {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// s3Err classifies an SDK error: a failed precondition is failed (ErrExists
// or ErrConflict), a missing key ErrNotFound (for a replace: ErrConflict),
// throttling, 5xx and network errors ErrUnavailable.
func s3Err(err error, failed error) error {
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch {
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
		return fmt.Errorf("%w (%s)", failed, code)
	case code == "NoSuchKey" || status == http.StatusNotFound && code != "NoSuchBucket":
		if failed == ErrConflict {
			return fmt.Errorf("%w (it is gone)", ErrConflict)
		}
		return ErrNotFound
	case status == 0 || status >= 500 || status == http.StatusTooManyRequests || code == "SlowDown" || code == "ConditionalRequestConflict":
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

func isConditionalConflict(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ConditionalRequestConflict" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusConflict
}

// MaxConcurrent is the most requests one operation sends a store at once
// (package cluster bounds its writers by it); the S3 client keeps that many
// idle connections.
const MaxConcurrent = 128

// maxDoc bounds what a read accepts: a keyring of many nodes' keys is a few
// KiB; 16 MiB is far beyond any real document.
const maxDoc = 16 << 20
