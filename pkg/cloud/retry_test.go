package cloud_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

// The retry rules of the vendor's Terraform provider (go-retryablehttp's
// default policy, GETs only; enable's IAM and busy-cluster handling), each
// with a test that the previous rules failed.

// A 429 mid-wait is retried after what Retry-After asks; it does not end a
// wait (it used to be a final 4xx).
func TestRateLimitMidWait(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	e.srv.RateLimit(2, 7*time.Second)
	info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{})
	if err != nil || info.Status != cloud.StatusEnabled {
		t.Fatalf("wait through two 429s: %+v, %v", info, err)
	}
	if n := e.count("GET", 429); n != 2 {
		t.Errorf("%d GETs answered 429, want 2", n)
	}
	if got := e.clock.Slept(); len(got) < 2 || got[0] != 7*time.Second || got[1] != 7*time.Second {
		t.Errorf("slept %v: want 7s twice first (Retry-After: 7)", got)
	}
	logs := strings.Join(e.Logs(), "\n")
	if !strings.Contains(logs, "429 Too Many Requests") || !strings.Contains(logs, "Retry-After") {
		t.Errorf("logs %q do not say why they wait", logs)
	}
}

// A wait's poll that stays rate-limited past a GET's own retries is polled
// again after at least Retry-After, and still finishes.
func TestRateLimitLongerThanAGET(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	e.srv.RateLimit(cloud.GETAttempts+1, 20*time.Second)
	if _, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatalf("wait: %v", err)
	}
	want := slices.Repeat([]time.Duration{20 * time.Second}, cloud.GETAttempts)
	if got := e.clock.Slept(); !slices.Equal(got[:cloud.GETAttempts], want) {
		t.Errorf("slept %v, want %v first", got, want)
	}
	// GetCMEK alone: a 429 that outlasts the tries is ErrUnavailable, not
	// a rejected request.
	e.srv.RateLimit(cloud.GETAttempts, 0)
	_, err := e.c.GetCMEK(ctx, clusterID)
	if !errors.Is(err, cloud.ErrUnavailable) || errors.Is(err, cloud.ErrRejected) {
		t.Fatalf("get after %d 429s: %v, want ErrUnavailable only", cloud.GETAttempts, err)
	}
}

// Retry-After on a 503 GET is honoured too, and capped at MaxRetryAfter.
func TestRetryAfterOn503(t *testing.T) {
	e := newEnv(t, "us-east-1")
	e.srv.Busy(1)
	e.srv.BusyRetryAfter(3 * time.Second)
	if _, err := e.c.GetCMEK(context.Background(), clusterID); err != nil {
		t.Fatal(err)
	}
	e.srv.Busy(1)
	e.srv.BusyRetryAfter(24 * time.Hour)
	if _, err := e.c.GetCMEK(context.Background(), clusterID); err != nil {
		t.Fatal(err)
	}
	if got, want := e.clock.Slept(), []time.Duration{3 * time.Second, cloud.MaxRetryAfter}; !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}
}

// 501 Not Implemented is final; 502 and 504 are retried.
func TestGET501Final(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	e.srv.StatusErrors("GET", http.StatusNotImplemented, 1)
	if _, err := e.c.GetCMEK(ctx, clusterID); err == nil {
		t.Fatal("get on 501: no error")
	}
	if n := e.count("GET", 0); n != 1 {
		t.Errorf("501 tried %d times, want 1", n)
	}
	for _, st := range []int{http.StatusBadGateway, http.StatusGatewayTimeout} {
		e.srv.StatusErrors("GET", st, 2)
		before := e.count("GET", 0)
		if _, err := e.c.GetCMEK(ctx, clusterID); err != nil {
			t.Fatalf("get after two %d: %v", st, err)
		}
		if n := e.count("GET", 0) - before; n != 3 {
			t.Errorf("%d: %d GETs, want 3", st, n)
		}
	}
}

// A TLS certificate the client does not trust fails at once: retrying
// cannot make it trusted.
func TestTLSCertificateErrorNotRetried(t *testing.T) {
	var hits atomic.Int64
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake error the test provokes
	ts.StartTLS()
	defer ts.Close()
	clock := newClock()
	c, err := cloud.New(cloud.Options{Server: ts.URL, APIKey: cloud.NewSecret(testKey),
		HTTPClient: &http.Client{Transport: &http.Transport{}}, Now: clock.Now, Sleep: clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetCMEK(context.Background(), clusterID)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("get from an untrusted server: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
	if s := clock.Slept(); len(s) != 0 {
		t.Errorf("slept %v before giving up on a certificate error, want no retry", s)
	}
}

// A redirect loop fails at once.
func TestRedirectLoopNotRetried(t *testing.T) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	}))
	defer ts.Close()
	clock := newClock()
	c, err := cloud.New(cloud.Options{Server: ts.URL, APIKey: cloud.NewSecret(testKey), Now: clock.Now, Sleep: clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = c.GetCMEK(context.Background(), clusterID); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("get from a redirect loop: %v", err)
	}
	if n := hits.Load(); n != 10 { // one GET, followed through Go's 10 redirects
		t.Errorf("server saw %d requests, want 10 (one GET, not retried)", n)
	}
}

// 503 on enable while the cluster is busy: wait until GET cluster says it
// is ready, then POST again (it used to POST again blindly for 10 min).
func TestEnableWaitsForBusyCluster(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	e.srv.Lock(3)
	info, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1"))
	if err != nil || info.Status != cloud.StatusEnabling {
		t.Fatalf("enable on a locked cluster: %+v, %v", info, err)
	}
	if a, b := e.count("POST", 503), e.count("POST", 200); a != 1 || b != 1 {
		t.Errorf("POSTs: %d answered 503 and %d 200, want 1 and 1", a, b)
	}
	var clusterGETs int
	for _, r := range e.srv.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, clusterID) {
			clusterGETs++
		}
	}
	if clusterGETs != 3 {
		t.Errorf("%d cluster GETs, want 3 (LOCKED, LOCKED, CREATED)", clusterGETs)
	}
	if l := strings.Join(e.Logs(), "\n"); !strings.Contains(l, "busy") || !strings.Contains(l, "ready") {
		t.Errorf("logs %q do not say it waits for the busy cluster", l)
	}
}

// The IAM window runs from the first 400/401/403, not from the first POST:
// time spent waiting for a busy cluster does not count against it.
func TestEnableIAMWindowFromFirstRefusal(t *testing.T) {
	e := newEnv(t, "us-east-1")
	e.srv.SetPolls(1)
	e.srv.Lock(12) // about a minute of polling at 0.5 s doubling to 10 s
	e.srv.IAMDenied(1 << 30)
	start := e.clock.Now()
	_, err := e.c.EnableCMEK(context.Background(), clusterID, e.specs("us-east-1"))
	if !errors.Is(err, cloud.ErrAuth) {
		t.Fatalf("enable: %v, want ErrAuth", err)
	}
	el := e.clock.Now().Sub(start)
	if el < cloud.IAMPropagationWindow+time.Minute {
		t.Errorf("gave up after %v: the IAM window must start at the first refusal, after the cluster wait", el)
	}
}

// PUT and PATCH are never retried, not even on 503.
func TestWritesNotRetriedOn503(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	e.srv.Busy(1 << 30)
	if _, err := e.c.UpdateCMEK(ctx, clusterID, e.specs("us-east-1")); !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("update while busy: %v, want ErrUnavailable", err)
	}
	if _, err := e.c.RevokeCMEK(ctx, clusterID); !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("revoke while busy: %v, want ErrUnavailable", err)
	}
	if a, b := e.count("PUT", 0), e.count("PATCH", 0); a != 1 || b != 1 {
		t.Errorf("%d PUTs and %d PATCHes, want 1 each", a, b)
	}
	if s := e.clock.Slept(); len(s) > 2 { // the wait's two polls only
		t.Errorf("slept %v: a write was retried", s)
	}
}

// Region add: the cluster PATCH with the rules of
// DedicatedClusterUpdateSpecification, then the cluster ready, then the new
// region ENABLED.
func TestAddRegions(t *testing.T) {
	e := newEnv(t, "us-east-1", "us-west-2")
	ctx := context.Background()
	cl, err := e.c.GetCluster(ctx, clusterID)
	if err != nil || cl.State != cloud.ClusterCreated || len(cl.Regions) != 2 || cl.Region("us-west-2").NodeCount != 3 {
		t.Fatalf("get cluster: %+v, %v", cl, err)
	}
	nodes := map[string]int32{"us-east-1": 3, "us-west-2": 3, "us-central-1": 4}
	// CMEK off: a key for the new region is refused.
	if _, err := e.c.AddRegions(ctx, clusterID, nodes, e.specs("us-central-1")); !errors.Is(err, cloud.ErrRejected) || !strings.Contains(err.Error(), "not enabled") {
		t.Fatalf("add with a key while CMEK is off: %v", err)
	}
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1", "us-west-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, specs := range map[string][]cloud.RegionSpec{
		"a new region without its key":    nil,
		"a key for an existing region":    e.specs("us-east-1", "us-central-1"),
		"a key for a region not in nodes": e.specs("us-central-1", "us-east-2"),
	} {
		if _, err := e.c.AddRegions(ctx, clusterID, nodes, specs); !errors.Is(err, cloud.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
	// While the cluster is busy: 503, once, never retried.
	e.srv.Lock(2)
	if _, err := e.c.AddRegions(ctx, clusterID, nodes, e.specs("us-central-1")); !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("add while locked: %v, want ErrUnavailable", err)
	}
	if n := e.count("PATCH", 503); n != 1 {
		t.Errorf("%d PATCHes answered 503, want 1", n)
	}
	if _, err := e.c.WaitClusterReady(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	cl, err = e.c.AddRegions(ctx, clusterID, nodes, e.specs("us-central-1"))
	if err != nil || cl.State != cloud.ClusterLocked {
		t.Fatalf("add: %+v, %v", cl, err)
	}
	if cl, err = e.c.WaitClusterReady(ctx, clusterID, cloud.WaitOptions{}); err != nil || cl.Region("us-central-1").NodeCount != 4 {
		t.Fatalf("wait for the cluster: %+v, %v", cl, err)
	}
	info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{})
	if err != nil || info.Region("us-central-1") == nil || info.Region("us-central-1").Status != cloud.StatusEnabled {
		t.Fatalf("wait for cmek: %+v, %v", info, err)
	}
	var body string
	for _, r := range e.srv.Requests() {
		if r.Method == "PATCH" && r.Status == 200 {
			body = r.Body
		}
	}
	if !strings.Contains(body, `"region_nodes":{`) || !strings.Contains(body, `"cmek_region_specs":[{"region":"us-central-1"`) {
		t.Errorf("PATCH body %s", body)
	}
}
