package cloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
