package cloud_test

// Which requests are retried, and which errors are final.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

func TestGETRetries(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	e.srv.GETErrors(cloud.GETAttempts - 1)
	if _, err := e.c.GetCMEK(ctx, clusterID); err != nil {
		t.Fatalf("get after %d 500s: %v", cloud.GETAttempts-1, err)
	}
	if n := e.count("GET", 0); n != cloud.GETAttempts {
		t.Errorf("%d GETs, want %d", n, cloud.GETAttempts)
	}
	s := time.Second // 1 s doubling to 30 s, as go-retryablehttp's defaults
	if got, want := e.clock.Slept(), []time.Duration{s, 2 * s, 4 * s, 8 * s}; !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}

	e.srv.GETErrors(cloud.GETAttempts)
	_, err := e.c.GetCMEK(ctx, clusterID)
	if !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("get after %d 500s: %v, want ErrUnavailable", cloud.GETAttempts, err)
	}
	var ae *cloud.APIError
	if !errors.As(err, &ae) || ae.Status != 500 || ae.Code != 13 || ae.Message != "internal error" {
		t.Errorf("api error %+v", ae)
	}
	if n := e.count("GET", 500); n != 2*cloud.GETAttempts-1 {
		t.Errorf("%d GETs answered 500, want %d", n, 2*cloud.GETAttempts-1)
	}

	// 503 on a GET is a 5xx: retried as well.
	e.srv.Busy(2)
	before := e.count("GET", 0)
	if _, err := e.c.GetCMEK(ctx, clusterID); err != nil {
		t.Fatal(err)
	}
	if n := e.count("GET", 0) - before; n != 3 {
		t.Errorf("%d GETs for 2 busy answers, want 3", n)
	}
}

// countingTransport counts round trips that reached the network layer.
type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func TestNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	ct := &countingTransport{next: &http.Transport{}}
	clock := newClock()
	var logs []string
	c, err := cloud.New(cloud.Options{Server: "http://" + addr, APIKey: cloud.NewSecret(testKey),
		HTTPClient: &http.Client{Transport: ct}, Now: clock.Now, Sleep: clock.Sleep,
		Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.GetCMEK(ctx, clusterID)
	if !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("get: %v, want ErrUnavailable", err)
	}
	noKey(t, err)
	if n := ct.n.Load(); n != cloud.GETAttempts {
		t.Errorf("GET tried %d times, want %d", n, cloud.GETAttempts)
	}
	ct.n.Store(0)
	_, err = c.RevokeCMEK(ctx, clusterID)
	if !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("revoke: %v, want ErrUnavailable", err)
	}
	if n := ct.n.Load(); n != 1 {
		t.Errorf("PATCH tried %d times, want 1 (only GET is retried on network errors)", n)
	}
	for _, l := range logs {
		if strings.Contains(l, testKey) {
			t.Errorf("log holds the key: %s", l)
		}
	}
}

// iamAttempts is how many POSTs the IAM-propagation rule allows: one, then
// one more after each backoff delay while less than the window has passed.
func iamAttempts(window time.Duration) int {
	elapsed, n := time.Duration(0), 1
	for d := 500 * time.Millisecond; elapsed < window; n++ {
		elapsed += d
		d = min(2*d, 10*time.Second)
	}
	return n
}

func TestEnableIAMPropagation(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	e.srv.IAMDenied(3)
	info, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1"))
	if err != nil || info.Status != cloud.StatusEnabling {
		t.Fatalf("enable after 3 403s: %+v, %v", info, err)
	}
	if a, b := e.count("POST", 403), e.count("POST", 200); a != 3 || b != 1 {
		t.Errorf("POSTs: %d answered 403 and %d 200, want 3 and 1", a, b)
	}
	logs := e.Logs()
	if len(logs) != 3 || !strings.Contains(logs[0], "IAM") || !strings.Contains(logs[0], "propagate") || !strings.Contains(logs[0], "403") {
		t.Errorf("logs %q: want 3 lines that name the 403 and IAM propagation", logs)
	}
}

func TestEnableIAMPropagationGivesUp(t *testing.T) {
	e := newEnv(t, "us-east-1")
	e.srv.IAMDenied(1 << 30)
	start := e.clock.Now()
	_, err := e.c.EnableCMEK(context.Background(), clusterID, e.specs("us-east-1"))
	if !errors.Is(err, cloud.ErrAuth) {
		t.Fatalf("enable: %v, want ErrAuth", err)
	}
	if !strings.Contains(err.Error(), "permission denied by the key's IAM policy") || !strings.Contains(err.Error(), "10m0s") {
		t.Errorf("error %q lacks the API's message or the window", err)
	}
	want := iamAttempts(cloud.IAMPropagationWindow)
	if n := e.count("POST", 403); n != want {
		t.Errorf("%d POSTs, want %d", n, want)
	}
	if el := e.clock.Now().Sub(start); el < cloud.IAMPropagationWindow || el > cloud.IAMPropagationWindow+10*time.Second {
		t.Errorf("gave up after %v of fake time, want just past %v", el, cloud.IAMPropagationWindow)
	}
}

// A 400 on enable is retried too (the API may answer 400 while the key's
// grants propagate); it ends as ErrRejected with the API's message.
func TestEnable400RetriedThenRejected(t *testing.T) {
	e := newEnv(t, "us-east-1", "us-west-2")
	_, err := e.c.EnableCMEK(context.Background(), clusterID, e.specs("us-east-1")) // us-west-2 missing
	if !errors.Is(err, cloud.ErrRejected) || errors.Is(err, cloud.ErrAuth) {
		t.Fatalf("enable: %v, want ErrRejected", err)
	}
	if !strings.Contains(err.Error(), "missing us-west-2") {
		t.Errorf("error %q lacks the API's message", err)
	}
	if n := e.count("POST", 400); n != iamAttempts(cloud.IAMPropagationWindow) {
		t.Errorf("%d POSTs, want %d", n, iamAttempts(cloud.IAMPropagationWindow))
	}
}

func TestEnableOther4xxFinal(t *testing.T) {
	e := newEnv(t, "us-east-1")
	_, err := e.c.EnableCMEK(context.Background(), "no-such-cluster", e.specs("us-east-1"))
	if !errors.Is(err, cloud.ErrNotFound) {
		t.Fatalf("enable: %v, want ErrNotFound", err)
	}
	if n := e.count("POST", 0); n != 1 {
		t.Errorf("%d POSTs, want 1", n)
	}
}

func TestWritesNotRetriedOn500(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	e.srv.ServerErrors("POST", 1)
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("enable: %v, want ErrUnavailable", err)
	}
	e.srv.ServerErrors("PATCH", 1)
	if _, err := e.c.RevokeCMEK(ctx, clusterID); !errors.Is(err, cloud.ErrUnavailable) {
		t.Fatalf("revoke: %v, want ErrUnavailable", err)
	}
	if a, b := e.count("POST", 0), e.count("PATCH", 0); a != 1 || b != 1 {
		t.Errorf("%d POSTs and %d PATCHes, want 1 each", a, b)
	}
}

func TestUpdateAndRevoke4xxFinal(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	// PUT for a region the cluster lacks: 400, once.
	_, err := e.c.UpdateCMEK(ctx, clusterID, e.specs("us-west-2"))
	var ae *cloud.APIError
	if !errors.Is(err, cloud.ErrRejected) || !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, `"us-west-2" is not a region`) {
		t.Fatalf("update: %v", err)
	}
	// PATCH before enabling: 400, once.
	if _, err := e.c.RevokeCMEK(ctx, clusterID); !errors.Is(err, cloud.ErrRejected) || !strings.Contains(err.Error(), "not enabled") {
		t.Fatalf("revoke: %v", err)
	}
	if a, b := e.count("PUT", 0), e.count("PATCH", 0); a != 1 || b != 1 {
		t.Errorf("%d PUTs and %d PATCHes, want 1 each", a, b)
	}
	// A wrong key: 401, once, ErrAuth.
	e.srv.SetAPIKey("another-key")
	if _, err := e.c.UpdateCMEK(ctx, clusterID, e.specs("us-east-1")); !errors.Is(err, cloud.ErrAuth) {
		t.Fatalf("update with a wrong key: %v, want ErrAuth", err)
	}
	if n := e.count("PUT", 401); n != 1 {
		t.Errorf("%d PUTs answered 401, want 1", n)
	}
}
