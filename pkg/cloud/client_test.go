package cloud_test

import (
	"context"
	"encoding/json"
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

func TestHeaders(t *testing.T) {
	e := newEnv(t, "us-east-1")
	if _, err := e.c.GetCMEK(context.Background(), clusterID); err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if !r.Authed || r.CcVersion != "2024-09-16" || r.Accept != "application/json" || r.UserAgent != "cmekctl/1.2.3-test" {
		t.Errorf("request headers: authed=%v Cc-Version=%q Accept=%q User-Agent=%q", r.Authed, r.CcVersion, r.Accept, r.UserAgent)
	}
	if r.Method != "GET" || r.Path != "/api/v1/clusters/"+clusterID+"/cmek" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
}

func TestNewChecksOptions(t *testing.T) {
	key := cloud.NewSecret(testKey)
	for _, tc := range []struct {
		name string
		opts cloud.Options
		want string
	}{
		{"no key", cloud.Options{Server: "https://example.test"}, "no API key"},
		{"plain http elsewhere", cloud.Options{Server: "http://api.example.test", APIKey: key}, "refusing plain http"},
		{"not a URL", cloud.Options{Server: "cockroachlabs.cloud", APIKey: key}, "invalid server URL"},
		{"user info", cloud.Options{Server: "https://u:" + testKey + "@example.test", APIKey: key}, "invalid server URL"},
		{"key with a newline", cloud.Options{APIKey: cloud.NewSecret(testKey + "\n")}, "control"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cloud.New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
			noKey(t, err)
		})
	}
	c, err := cloud.New(cloud.Options{APIKey: key})
	if err != nil || c.Server() != cloud.DefaultServer {
		t.Fatalf("default server: %v %v", c, err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%+v", *c)} {
		if strings.Contains(s, testKey) {
			t.Errorf("printing the client shows the key: %s", s)
		}
	}
}

// TestLifecycle: enable → ENABLED, rotate one region → ENABLED with the past
// key kept, revoke → REVOKED, each through Wait.
func TestLifecycle(t *testing.T) {
	e := newEnv(t, "us-east-1", "europe-west1")
	ctx := context.Background()
	e.srv.SetPolls(3)

	info, err := e.c.GetCMEK(ctx, clusterID)
	if err != nil || info.Status != cloud.StatusDisabled || len(info.RegionInfos) != 2 {
		t.Fatalf("initial status: %+v, %v", info, err)
	}
	specs := e.specs("us-east-1", "europe-west1")
	enabledAt := e.clock.Now()
	info, err = e.c.EnableCMEK(ctx, clusterID, specs)
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != cloud.StatusEnabling || info.Region("us-east-1").Status != cloud.StatusEnabling {
		t.Fatalf("after POST: %+v", info)
	}
	var seen []cloud.Status
	info, err = e.c.Wait(ctx, clusterID, cloud.WaitOptions{Progress: func(ci *cloud.ClusterInfo) { seen = append(seen, ci.Status) }})
	if err != nil {
		t.Fatal(err)
	}
	if want := []cloud.Status{"ENABLING", "ENABLING", "ENABLED"}; !slices.Equal(seen, want) {
		t.Errorf("progress %v, want %v", seen, want)
	}
	for _, r := range info.RegionInfos {
		if r.Status != cloud.StatusEnabled || len(r.KeyInfos) != 1 || r.KeyInfos[0].Status != cloud.StatusEnabled {
			t.Errorf("region after enable: %+v", r)
		}
	}
	if k := info.Region("us-east-1").Current(); k == nil || k.Spec != specs[0].KeySpec || k.CreatedAt.IsZero() {
		t.Errorf("current key of us-east-1: %+v, want spec %+v", k, specs[0].KeySpec)
	}
	if got, want := e.clock.Slept(), []time.Duration{500 * time.Millisecond, time.Second}; !slices.Equal(got, want) {
		t.Errorf("wait slept %v, want %v", got, want)
	}

	// Rotate us-east-1 to a new key.
	newKey, err := cloud.SpecFromURI("aws-kms:///arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555", "arn:aws:iam::111122223333:role/crdb-cmek")
	if err != nil {
		t.Fatal(err)
	}
	info, err = e.c.UpdateCMEK(ctx, clusterID, []cloud.RegionSpec{{Region: "us-east-1", KeySpec: newKey}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Region("us-east-1").Status != cloud.StatusRotating || info.Region("europe-west1").Status != cloud.StatusEnabled {
		t.Fatalf("after PUT: %+v", info)
	}
	if info, err = e.c.Wait(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	east := info.Region("us-east-1")
	if east.Status != cloud.StatusEnabled || len(east.KeyInfos) != 2 ||
		east.KeyInfos[0].Status != cloud.StatusDisabled || east.KeyInfos[0].Spec != specs[0].KeySpec ||
		east.KeyInfos[1].Status != cloud.StatusEnabled || east.Current().Spec != newKey {
		t.Errorf("us-east-1 after rotation: %+v", east)
	}
	if !info.EnabledAt().Equal(enabledAt) || !east.Current().CreatedAt.After(enabledAt) {
		t.Errorf("EnabledAt %v, want %v; current key created %v", info.EnabledAt(), enabledAt, east.Current().CreatedAt)
	}
	if west := info.Region("europe-west1"); len(west.KeyInfos) != 1 {
		t.Errorf("europe-west1 was not rotated but has %d keys", len(west.KeyInfos))
	}

	// Revoke.
	if info, err = e.c.RevokeCMEK(ctx, clusterID); err != nil || info.Status != cloud.StatusRevoking {
		t.Fatalf("after PATCH: %+v, %v", info, err)
	}
	if info, err = e.c.Wait(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	if info.Status != cloud.StatusRevoked || info.Region("us-east-1").Current().Status != cloud.StatusRevoked ||
		info.Region("us-east-1").KeyInfos[0].Status != cloud.StatusDisabled {
		t.Errorf("after revoke: %+v", info)
	}
	body := e.srv.Requests()
	var patch string
	for _, r := range body {
		if r.Method == "PATCH" {
			patch = r.Body
		}
	}
	if patch != `{"action":"REVOKE"}` {
		t.Errorf("PATCH body %q", patch)
	}
}

func TestWaitBackoffCapped(t *testing.T) {
	e := newEnv(t, "us-east-1")
	e.srv.SetPolls(9)
	ctx := context.Background()
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	s := time.Second
	want := []time.Duration{s / 2, s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s, 10 * s}
	if got := e.clock.Slept(); !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}
	if n := e.count("GET", 200); n != 9 {
		t.Errorf("%d GETs, want 9", n)
	}
}

func TestWaitFailed(t *testing.T) {
	e := newEnv(t, "us-east-1", "us-west-2")
	ctx := context.Background()
	e.srv.FailRegion("us-west-2", "AccessDeniedException: the role cannot use the key")
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1", "us-west-2")); err != nil {
		t.Fatal(err)
	}
	info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{})
	if !errors.Is(err, cloud.ErrFailed) {
		t.Fatalf("wait: %v, want ErrFailed", err)
	}
	var fe *cloud.FailedError
	if !errors.As(err, &fe) || fe.Region != "us-west-2" || fe.Status != cloud.StatusEnableFailed ||
		fe.UserMessage != "AccessDeniedException: the role cannot use the key" {
		t.Fatalf("failed error: %#v", fe)
	}
	if !strings.Contains(err.Error(), "us-west-2") || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Errorf("error text %q lacks the region or the message", err)
	}
	if info == nil || info.Region("us-west-2").Status != cloud.StatusEnableFailed {
		t.Errorf("wait returned %+v", info)
	}
}

func TestWaitTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout, want time.Duration
	}{{90 * time.Second, 90 * time.Second}, {0, 2 * time.Hour}} {
		t.Run(tc.want.String(), func(t *testing.T) {
			e := newEnv(t, "us-east-1")
			e.srv.SetPolls(1 << 30)
			ctx := context.Background()
			if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
				t.Fatal(err)
			}
			start := e.clock.Now()
			info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{Timeout: tc.timeout})
			if !errors.Is(err, cloud.ErrTimeout) || errors.Is(err, cloud.ErrFailed) {
				t.Fatalf("wait: %v, want ErrTimeout", err)
			}
			if !strings.Contains(err.Error(), "us-east-1 ENABLING") {
				t.Errorf("timeout error %q does not say what is still pending", err)
			}
			if got := e.clock.Now().Sub(start); got != tc.want {
				t.Errorf("waited %v of fake time, want %v", got, tc.want)
			}
			if info == nil || info.Status != cloud.StatusEnabling {
				t.Errorf("last status %+v", info)
			}
		})
	}
}

func TestWaitPollsThroughServerErrors(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	e.srv.GETErrors(cloud.GETAttempts + 2) // more than one GetCMEK retries
	info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{})
	if err != nil || info.Status != cloud.StatusEnabled {
		t.Fatalf("wait: %+v, %v", info, err)
	}
	if n := e.count("GET", 500); n != cloud.GETAttempts+2 {
		t.Errorf("%d GETs answered 500, want %d", n, cloud.GETAttempts+2)
	}
	if !slices.ContainsFunc(e.Logs(), func(l string) bool { return strings.Contains(l, "polling again") }) {
		t.Errorf("no log line about polling again: %q", e.Logs())
	}
}

func TestWaitStopsOnClientError(t *testing.T) {
	e := newEnv(t, "us-east-1")
	_, err := e.c.Wait(context.Background(), "no-such-cluster", cloud.WaitOptions{})
	if !errors.Is(err, cloud.ErrNotFound) {
		t.Fatalf("wait: %v, want ErrNotFound", err)
	}
	if n := e.count("GET", 0); n != 1 {
		t.Errorf("%d GETs, want 1 (a 404 is final)", n)
	}
}

func TestWaitCancelled(t *testing.T) {
	e := newEnv(t, "us-east-1")
	e.srv.SetPolls(1 << 30)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	polls := 0
	_, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{Progress: func(*cloud.ClusterInfo) {
		if polls++; polls == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v, want context.Canceled", err)
	}
	if polls != 3 {
		t.Errorf("%d polls, want 3", polls)
	}
}

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

func TestLocalValidation(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	spec := e.specs("us-east-1")[0]
	for name, specs := range map[string][]cloud.RegionSpec{
		"none":      nil,
		"no region": {{KeySpec: spec.KeySpec}},
		"twice":     {spec, spec},
		"no uri":    {{Region: "us-east-1", KeySpec: cloud.KeySpec{Type: cloud.KeyTypeAWSKMS}}},
	} {
		if _, err := e.c.EnableCMEK(ctx, clusterID, specs); err == nil {
			t.Errorf("%s: enable accepted %+v", name, specs)
		}
	}
	if _, err := e.c.GetCMEK(ctx, " "); err == nil {
		t.Error("get accepted an empty cluster ID")
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("%d requests sent for invalid input", n)
	}
}

func TestListBackups(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	e.srv.SetPageSize(2)
	base := e.clock.Now()
	var ids []string
	for i := range 7 {
		id := fmt.Sprintf("b%d", i)
		ids = append(ids, id)
		e.srv.AddBackup(id, base.Add(time.Duration(i)*time.Hour))
	}
	all, err := e.c.ListBackups(ctx, clusterID, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, b := range all {
		got = append(got, b.ID)
		if !b.AsOfTime.Equal(base.Add(time.Duration(i) * time.Hour)) {
			t.Errorf("backup %s as_of_time %v", b.ID, b.AsOfTime)
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("backups %v, want %v", got, ids)
	}
	if n := e.count("GET", 200); n != 4 {
		t.Errorf("%d pages fetched, want 4 (7 backups, 2 a page)", n)
	}
	reqs := e.srv.Requests()
	if q := reqs[0].Query; q.Get("pagination.limit") != "100" || q.Get("pagination.page") != "" {
		t.Errorf("first page query %v", q)
	}
	if q := reqs[1].Query; q.Get("pagination.page") == "" {
		t.Errorf("second page query %v has no page token", q)
	}

	// [start, end): start inclusive, end exclusive.
	some, err := e.c.ListBackups(ctx, clusterID, base.Add(2*time.Hour), base.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, b := range some {
		got = append(got, b.ID)
	}
	if want := []string{"b2", "b3", "b4"}; !slices.Equal(got, want) {
		t.Errorf("backups in [2h, 5h): %v, want %v", got, want)
	}
	none, err := e.c.ListBackups(ctx, clusterID, base.Add(100*time.Hour), time.Time{})
	if err != nil || len(none) != 0 {
		t.Errorf("no backups: %v, %v", none, err)
	}
	// A failing page is retried like any GET.
	e.srv.GETErrors(2)
	if all2, err := e.c.ListBackups(ctx, clusterID, time.Time{}, time.Time{}); err != nil || len(all2) != 7 {
		t.Errorf("list with 2 failing GETs: %d backups, %v", len(all2), err)
	}
}

// TestKeyNeverLeaks: the server echoes the Authorization header in its
// error messages; no error text and no log line may hold the key.
func TestKeyNeverLeaks(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	e.srv.EchoAuth(true)
	var errs []error
	collect := func(_ any, err error) { errs = append(errs, err) }

	e.srv.GETErrors(cloud.GETAttempts)
	collect(e.c.GetCMEK(ctx, clusterID))
	e.srv.IAMDenied(4)
	collect(e.c.EnableCMEK(ctx, clusterID, e.specs("us-west-2")))
	e.srv.IAMDenied(0)
	collect(e.c.UpdateCMEK(ctx, clusterID, e.specs("us-west-2")))
	collect(e.c.RevokeCMEK(ctx, clusterID))
	collect(e.c.GetCMEK(ctx, "no-such-cluster"))
	collect(e.c.ListBackups(ctx, "no-such-cluster", time.Time{}, time.Time{}))
	e.srv.FailRegion("us-east-1", "boom")
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	collect(e.c.Wait(ctx, clusterID, cloud.WaitOptions{}))

	echoed := 0
	for i, err := range errs {
		if err == nil {
			t.Errorf("call %d: no error", i)
			continue
		}
		noKey(t, err)
		var ae *cloud.APIError
		if errors.As(err, &ae) {
			noKey(t, errors.New(ae.Message))
			d, _ := json.Marshal(ae.Details)
			noKey(t, errors.New(string(d)))
		}
		if strings.Contains(err.Error(), "Bearer "+cloud.Redacted) {
			echoed++
		}
	}
	if echoed < 5 {
		t.Errorf("only %d errors carried the echoed (scrubbed) header: the test does not test", echoed)
	}
	if len(e.Logs()) == 0 {
		t.Error("no log lines to check")
	}
	for _, l := range e.Logs() {
		if !strings.Contains(l, "Bearer "+cloud.Redacted) && strings.Contains(l, "Authorization") {
			t.Errorf("log line %q", l)
		}
	}
}
