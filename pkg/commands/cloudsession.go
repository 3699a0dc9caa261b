package commands

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

// APICalls counts the HTTP requests made to the Cloud API, retries
// included, by method.
type APICalls struct {
	GET   int64 `json:"get"`
	POST  int64 `json:"post"`
	PUT   int64 `json:"put"`
	PATCH int64 `json:"patch"`
	Total int64 `json:"total"`
}

type apiCounter struct {
	base                       http.RoundTripper
	get, post, put, patch, all atomic.Int64
}

func (c *apiCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodGet:
		c.get.Add(1)
	case http.MethodPost:
		c.post.Add(1)
	case http.MethodPut:
		c.put.Add(1)
	case http.MethodPatch:
		c.patch.Add(1)
	}
	c.all.Add(1)
	return c.base.RoundTrip(r)
}

func (c *apiCounter) counts() APICalls {
	return APICalls{GET: c.get.Load(), POST: c.post.Load(), PUT: c.put.Load(), PATCH: c.patch.Load(), Total: c.all.Load()}
}

// cloudSession is one command's Cloud API client, its call counts and its
// KMS session (for the keys checked through their providers).
type cloudSession struct {
	f     *Factory
	o     *CloudOptions
	id    string
	c     *cloud.Client
	calls *apiCounter
	kms   *kmsSession
}

// newCloudSession checks the options and builds the client. The API key
// comes from --api-key-file or COCKROACH_API_KEY and is held in a
// cloud.Secret from then on: it never reaches output, errors or argv.
func newCloudSession(f *Factory, o *CloudOptions) (*cloudSession, error) {
	id := strings.TrimSpace(o.ClusterID)
	if id == "" {
		return nil, usageError("find it with the Cloud console or ccloud cluster list", "--cloud needs --cluster-id ID")
	}
	key, err := cloudAPIKey(f, o)
	if err != nil {
		return nil, err
	}
	server := o.Server
	if server == "" {
		server = f.Getenv(envCloudServer)
	}
	counter := &apiCounter{base: http.DefaultTransport}
	now, sleep := cloudClock(f)
	c, err := cloud.New(cloud.Options{
		Server:     server,
		APIKey:     key,
		HTTPClient: &http.Client{Timeout: 60 * time.Second, Transport: counter},
		Now:        now,
		Sleep:      sleep,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(f.IO.ErrOut, "cmekctl: "+format+"\n", args...)
		},
	})
	if err != nil {
		return nil, usageError("set --server or "+envCloudServer+" to https://HOST", "%v", err)
	}
	return &cloudSession{f: f, o: o, id: id, c: c, calls: counter, kms: f.newSession()}, nil
}

func cloudAPIKey(f *Factory, o *CloudOptions) (cloud.Secret, error) {
	if o.APIKeyFile != "" {
		b, err := os.ReadFile(o.APIKeyFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named once, below
			}
			return cloud.Secret{}, usageError("give a file that holds the service account API key", "cloud api: read --api-key-file %s: %v", o.APIKeyFile, err)
		}
		k := strings.TrimSpace(string(b))
		clear(b)
		if k == "" {
			return cloud.Secret{}, usageError("give a file that holds the service account API key", "cloud api: --api-key-file %s is empty", o.APIKeyFile)
		}
		return cloud.NewSecret(k), nil
	}
	if k := strings.TrimSpace(f.Getenv(envCloudAPIKey)); k != "" {
		return cloud.NewSecret(k), nil
	}
	return cloud.Secret{}, usageError("set "+envCloudAPIKey+" to a service account API key, or pass --api-key-file FILE",
		"cloud api: no API key: %s is not set and no --api-key-file was given", envCloudAPIKey)
}

// cloudClock is the Cloud client's clock: the real one, or one that runs
// faster by the test-only factor in CMEKCTL_CLOUD_POLL_SCALE.
func cloudClock(f *Factory) (func() time.Time, func(context.Context, time.Duration) error) {
	scale, err := strconv.ParseFloat(f.Getenv(envCloudPollScale), 64)
	if err != nil || scale <= 0 || scale >= 1 {
		return nil, nil // the client's defaults: real time
	}
	start := time.Now()
	now := func() time.Time { return start.Add(time.Duration(float64(time.Since(start)) / scale)) }
	sleep := func(ctx context.Context, d time.Duration) error {
		t := time.NewTimer(time.Duration(float64(d) * scale))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	return now, sleep
}

func (s *cloudSession) wantWait() bool { return s.o.Wait && !s.o.NoWait }

// wait polls until every region settles, with progress on a terminal.
// settle takes a mutating call's answer and, unless --no-wait, waits for
// every region to settle, returning the last state seen.
func (s *cloudSession) settle(ctx context.Context, rep *cloudOpReport) func(*cloud.ClusterInfo, error) (*cloud.ClusterInfo, error) {
	return func(info *cloud.ClusterInfo, err error) (*cloud.ClusterInfo, error) {
		if err != nil || !s.wantWait() {
			return info, err
		}
		rep.Waited = true
		w, err := s.wait(ctx)
		if w != nil {
			info = w
		}
		return info, err
	}
}

func (s *cloudSession) wait(ctx context.Context) (*cloud.ClusterInfo, error) {
	var progress func(*cloud.ClusterInfo)
	if s.f.IO.IsStderrTTY() {
		start := time.Now()
		progress = func(info *cloud.ClusterInfo) {
			fmt.Fprintf(s.f.IO.ErrOut, "cluster %s: %s (%s)\n", s.id, regionSummary(info), time.Since(start).Truncate(time.Second))
		}
	}
	return s.c.Wait(ctx, s.id, cloud.WaitOptions{Timeout: s.o.Timeout, Progress: progress})
}

func regionSummary(info *cloud.ClusterInfo) string {
	if info == nil {
		return "no status"
	}
	var parts []string
	for _, r := range info.RegionInfos {
		parts = append(parts, r.Region+" "+string(r.Status))
	}
	if len(parts) == 0 {
		return string(info.Status)
	}
	return strings.Join(parts, ", ")
}
