package cloud_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/cloud/cloudtest"
)

const (
	clusterID = "9f3c2a7e-0b1d-4c5e-8f6a-1234567890ab"
	// testKey is distinctive so that a leak anywhere is found by grep.
	testKey = "CCDB1_LeakCanary_7Qz3xW9pK2mN5vB8rT4y"
)

// fakeClock is the client's Now and Sleep: sleeping advances the clock.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
	f.slept = append(f.slept, d)
	return nil
}

func (f *fakeClock) Slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.slept...)
}

type env struct {
	t     *testing.T
	srv   *cloudtest.Server
	c     *cloud.Client
	clock *fakeClock

	mu   sync.Mutex
	logs []string
}

// newEnv starts the fake with a cluster in regions and a client of it whose
// every exchange is checked against the spec (when present). At the end of
// the test, no log line may hold the API key.
func newEnv(t *testing.T, regions ...string) *env {
	return newEnvWith(t, transportFor(t), regions...)
}

func newEnvWith(t *testing.T, rt http.RoundTripper, regions ...string) *env {
	t.Helper()
	e := &env{t: t, clock: newClock()}
	e.srv = cloudtest.New(t, cloudtest.Cluster{ID: clusterID, Regions: regions})
	e.srv.SetAPIKey(testKey)
	e.srv.SetClock(e.clock.Now)
	c, err := cloud.New(cloud.Options{
		Server:     e.srv.URL(),
		APIKey:     cloud.NewSecret(testKey),
		HTTPClient: &http.Client{Transport: rt},
		Now:        e.clock.Now,
		Sleep:      e.clock.Sleep,
		Logf:       e.logf,
		Version:    "1.2.3-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	t.Cleanup(func() {
		for _, l := range e.Logs() {
			if strings.Contains(l, testKey) {
				t.Errorf("log line holds the API key: %q", l)
			}
		}
	})
	return e
}

func (e *env) logf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logs = append(e.logs, fmt.Sprintf(format, args...))
}

func (e *env) Logs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.logs...)
}

// specs returns a valid key spec for each region, AWS for us-* regions and
// GCP for the others, built through SpecFromURI as the CLI will.
func (e *env) specs(regions ...string) []cloud.RegionSpec {
	e.t.Helper()
	var out []cloud.RegionSpec
	for i, r := range regions {
		var uri, principal string
		if strings.HasPrefix(r, "us-") {
			uri = fmt.Sprintf("aws-kms:///arn:aws:kms:%s:111122223333:key/0000000%d-aaaa-bbbb-cccc-ddddeeeeffff?REGION=%s", r, i, r)
			principal = "arn:aws:iam::111122223333:role/crdb-cmek"
		} else {
			uri = fmt.Sprintf("gcp-kms:///projects/p/locations/%s/keyRings/ring/cryptoKeys/key%d", r, i)
			principal = "crdb-cmek@p.iam.gserviceaccount.com"
		}
		ks, err := cloud.SpecFromURI(uri, principal)
		if err != nil {
			e.t.Fatalf("spec for %s: %v", r, err)
		}
		out = append(out, cloud.RegionSpec{Region: r, KeySpec: ks})
	}
	return out
}

// noKey fails the test if err's text holds the API key.
func noKey(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testKey) {
		t.Errorf("error holds the API key: %v", err)
	}
}

// count counts the fake's logged requests with method and status (0: any).
func (e *env) count(method string, status int) int { return e.srv.Count(method, status) }
